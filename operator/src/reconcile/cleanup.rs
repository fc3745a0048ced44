//! Closing sales before a Show goes.

use std::sync::Arc;

use boxoffice_crds::Show;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};
use tracing::info;

use super::{Context, Error, Result, publish};
use crate::builders::{self};

/// Before the Show goes: close sales in PostgreSQL (bookings stay). The owned objects
/// are removed by the garbage collector once the finalizer is gone.
pub(super) async fn cleanup(show: Arc<Show>, ctx: Arc<Context>) -> Result<Action> {
    let ns = show.namespace().unwrap_or_else(|| "default".into());
    let (database, _) = builders::secret_refs(&show, &ctx.config);
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let url = secrets
        .get_opt(&database.name)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| {
            d.get(&database.key)
                .map(|v| String::from_utf8_lossy(&v.0).into_owned())
        });
    match url {
        Some(url) => {
            let options = ctx
                .config
                .database_tls
                .connect_options(&url)
                .map_err(|e| Error::Database(e.to_string()))?;
            close_sales(options, &format!("{ns}/{}", show.name_any())).await?;
            publish(
                &ctx,
                &show,
                EventType::Normal,
                "SalesClosed",
                "sales closed; bookings are kept",
            )
            .await;
        }
        None => {
            // Without the database there is nothing to close; never block deletion.
            publish(
                &ctx,
                &show,
                EventType::Warning,
                "SalesNotClosed",
                "the database Secret is missing; nothing was closed",
            )
            .await;
        }
    }
    info!(show = %show.name_any(), "finalized");
    Ok(Action::await_change())
}

/// Marks `show` (`namespace/name`) closed in the shards' database; bookings stay.
pub async fn close_sales(options: sqlx::postgres::PgConnectOptions, show: &str) -> Result<()> {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect_with(&options)
        .await
        .map_err(|e| Error::Database(e.to_string()))?;
    let result = sqlx::query(
        "INSERT INTO shows (show, closed_at) VALUES ($1, now()) \
         ON CONFLICT (show) DO UPDATE SET closed_at = COALESCE(shows.closed_at, now())",
    )
    .bind(show)
    .execute(&mut conn)
    .await;
    match result {
        Ok(_) => Ok(()),
        // No shard ever ran against this database: nothing was sold, nothing to close.
        Err(e) if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01") => {
            Ok(())
        }
        Err(e) => Err(Error::Database(e.to_string())),
    }
}
