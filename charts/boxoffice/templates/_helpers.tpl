{{- define "boxoffice.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "boxoffice.labels" -}}
app.kubernetes.io/name: boxoffice-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "boxoffice.selectorLabels" -}}
app.kubernetes.io/name: boxoffice-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "boxoffice.serviceAccountName" -}}
{{- default (include "boxoffice.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "boxoffice.leaderElection" -}}
{{- if or .Values.leaderElection (gt (int .Values.replicas) 1) -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{- /* A map of labels as the operator's `key=value,...` flags take them. */ -}}
{{- define "boxoffice.labelList" -}}
{{- $items := list -}}
{{- range $k, $v := . -}}
{{- $items = append $items (printf "%s=%s" $k $v) -}}
{{- end -}}
{{- join "," $items -}}
{{- end -}}
