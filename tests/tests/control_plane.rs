//! The harness's control plane is a real one: the controller manager turns a
//! Deployment into a ReplicaSet and Pods, and the garbage collector removes dependents
//! when their owner goes. Also: etcd and PostgreSQL from the harness answer.

use std::collections::BTreeMap;
use std::time::Duration;

use boxoffice_e2e::{ControlPlane, EtcdOptions, EtcdServer, PostgresServer, wait_for};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::{Api, Resource, ResourceExt};
use sqlx::Connection;

fn deployment(name: &str, replicas: i32) -> Deployment {
    let labels = BTreeMap::from([("app".to_string(), name.to_string())]);
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "main".into(),
                        image: Some("example.invalid/nothing:1".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[tokio::test]
async fn deployments_get_replicasets_and_pods_and_are_garbage_collected() {
    let plane = ControlPlane::start().await.expect("control plane starts");
    let client = plane.client().await.expect("client");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let replicasets: Api<ReplicaSet> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    let created = deployments
        .create(&PostParams::default(), &deployment("web", 3))
        .await
        .expect("create deployment");
    let uid = created.uid().expect("uid");
    let selector = ListParams::default().labels("app=web");

    let rs = wait_for(
        "a ReplicaSet owned by the Deployment",
        Duration::from_secs(60),
        || {
            let replicasets = replicasets.clone();
            let selector = selector.clone();
            let uid = uid.clone();
            async move {
                let list = replicasets.list(&selector).await?;
                Ok(list
                    .items
                    .into_iter()
                    .find(|rs| rs.owner_references().iter().any(|o| o.uid == uid)))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plane.logs()));
    let rs_uid = rs.uid().expect("rs uid");

    let pod_count = wait_for(
        "3 Pods owned by the ReplicaSet",
        Duration::from_secs(60),
        || {
            let pods = pods.clone();
            let selector = selector.clone();
            let rs_uid = rs_uid.clone();
            async move {
                let list = pods.list(&selector).await?;
                let owned = list
                    .items
                    .iter()
                    .filter(|p| p.owner_references().iter().any(|o| o.uid == rs_uid))
                    .count();
                Ok((owned == 3).then_some(owned))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plane.logs()));
    assert_eq!(pod_count, 3);

    // A ConfigMap owned by the Deployment, to see the collector handle any kind.
    let owner = OwnerReference {
        api_version: Deployment::api_version(&()).to_string(),
        kind: Deployment::kind(&()).to_string(),
        name: "web".into(),
        uid: uid.clone(),
        ..Default::default()
    };
    configmaps
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("web-config".into()),
                    owner_references: Some(vec![owner]),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("create configmap");

    let background = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        ..Default::default()
    };
    deployments
        .delete("web", &background)
        .await
        .expect("delete deployment");

    wait_for(
        "dependents to be garbage-collected",
        Duration::from_secs(60),
        || {
            let (replicasets, pods, configmaps) =
                (replicasets.clone(), pods.clone(), configmaps.clone());
            let selector = selector.clone();
            async move {
                let rs_left = replicasets.list(&selector).await?.items.len();
                let pods_left = pods.list(&selector).await?.items.len();
                let cm_left = configmaps.get_opt("web-config").await?.is_some();
                Ok((rs_left == 0 && pods_left == 0 && !cm_left).then_some(()))
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", plane.logs()));
}

#[tokio::test]
async fn harness_etcd_and_postgres_answer() {
    let etcd = EtcdServer::start(EtcdOptions::default())
        .await
        .expect("etcd starts");
    let body = reqwest::get(format!("{}/version", etcd.endpoint()))
        .await
        .expect("etcd answers")
        .text()
        .await
        .expect("body");
    assert!(body.contains("\"etcdserver\":\"3.6."), "{body}");

    let pg = PostgresServer::shared().await.expect("postgres starts");
    let a = pg.create_database().await.expect("database a");
    let b = pg.create_database().await.expect("database b");
    assert_ne!(a, b, "each test gets its own database");
    let mut conn = sqlx::PgConnection::connect(&a).await.expect("connect");
    let (one,): (i32,) = sqlx::query_as("SELECT 1")
        .fetch_one(&mut conn)
        .await
        .expect("query");
    assert_eq!(one, 1);
    let (sync,): (String,) = sqlx::query_as("SHOW synchronous_commit")
        .fetch_one(&mut conn)
        .await
        .expect("show");
    assert_eq!(sync, "on");
}
