{{/*
TLS and etcd credentials (docs/security.md). The shards' Secrets live in each Show's
namespace: the operator only learns their names and mounts them into shard pods. The
operator's own Secrets live in the release namespace and are mounted here.
*/}}

{{- define "boxoffice.shardTransportEnv" -}}
{{- with .Values.shard.etcdTls }}{{ if .secretName }}
- name: BOXOFFICE_SHARD_ETCD_TLS_SECRET
  value: {{ .secretName | quote }}
- name: BOXOFFICE_SHARD_ETCD_CLIENT_CERT
  value: {{ .clientCertificate | quote }}
{{- end }}{{ end }}
{{- with .Values.shard.etcdAuth }}{{ if .secretName }}
- name: BOXOFFICE_SHARD_ETCD_AUTH_SECRET
  value: {{ .secretName | quote }}
{{- end }}{{ end }}
{{- with .Values.shard.databaseTls }}{{ if .secretName }}
- name: BOXOFFICE_SHARD_DATABASE_TLS_SECRET
  value: {{ .secretName | quote }}
- name: BOXOFFICE_SHARD_DATABASE_CLIENT_CERT
  value: {{ .clientCertificate | quote }}
{{- end }}{{ end }}
{{- end -}}

{{- define "boxoffice.operatorTransportEnv" -}}
{{- with .Values.operatorTransport.etcdTls }}{{ if .secretName }}
- name: BOXOFFICE_ETCD_CA_FILE
  value: /var/run/secrets/boxoffice/etcd-tls/ca.crt
{{- if .clientCertificate }}
- name: BOXOFFICE_ETCD_CERT_FILE
  value: /var/run/secrets/boxoffice/etcd-tls/tls.crt
- name: BOXOFFICE_ETCD_KEY_FILE
  value: /var/run/secrets/boxoffice/etcd-tls/tls.key
{{- end }}
{{- end }}{{ end }}
{{- with .Values.operatorTransport.etcdAuth }}{{ if .secretName }}
- name: BOXOFFICE_ETCD_USER
  valueFrom:
    secretKeyRef:
      name: {{ .secretName | quote }}
      key: username
- name: BOXOFFICE_ETCD_PASSWORD_FILE
  value: /var/run/secrets/boxoffice/etcd-auth/password
{{- end }}{{ end }}
{{- with .Values.operatorTransport.databaseTls }}{{ if .secretName }}
- name: BOXOFFICE_DATABASE_CA_FILE
  value: /var/run/secrets/boxoffice/database-tls/ca.crt
{{- if .clientCertificate }}
- name: BOXOFFICE_DATABASE_CERT_FILE
  value: /var/run/secrets/boxoffice/database-tls/tls.crt
- name: BOXOFFICE_DATABASE_KEY_FILE
  value: /var/run/secrets/boxoffice/database-tls/tls.key
{{- end }}
{{- end }}{{ end }}
{{- end -}}

{{- define "boxoffice.operatorTransportMounts" -}}
{{- range $name, $v := .Values.operatorTransport }}{{ if $v.secretName }}
- name: {{ kebabcase $name }}
  mountPath: /var/run/secrets/boxoffice/{{ kebabcase $name }}
  readOnly: true
{{- end }}{{ end }}
{{- end -}}

{{- define "boxoffice.operatorTransportVolumes" -}}
{{- range $name, $v := .Values.operatorTransport }}{{ if $v.secretName }}
- name: {{ kebabcase $name }}
  secret:
    secretName: {{ $v.secretName | quote }}
    items:
      {{- if eq $name "etcdAuth" }}
      - {key: password, path: password}
      {{- else }}
      - {key: ca.crt, path: ca.crt}
      {{- if $v.clientCertificate }}
      - {key: tls.crt, path: tls.crt}
      - {key: tls.key, path: tls.key}
      {{- end }}
      {{- end }}
{{- end }}{{ end }}
{{- end -}}
