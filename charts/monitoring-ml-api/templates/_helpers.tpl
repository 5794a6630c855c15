{{/* Names: <release>-<chart> unless the release name already holds the chart name. */}}
{{- define "mlapi.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "mlapi.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* <fullname>-collector, within the 63 characters of a DNS label. */}}
{{- define "mlapi.collectorName" -}}
{{- printf "%s-collector" (include "mlapi.fullname" . | trunc 53 | trimSuffix "-") }}
{{- end }}

{{- define "mlapi.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "mlapi.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: monitoring-ml-api
{{- end }}

{{/* Selector labels of one component: call with (dict "root" $ "component" "api"). */}}
{{- define "mlapi.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlapi.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mlapi.componentLabels" -}}
{{ include "mlapi.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "mlapi.feedbackKeySecretName" -}}
{{- default (printf "%s-feedback-key" (include "mlapi.fullname" .)) .Values.feedbackKey.existingSecret }}
{{- end }}

{{/* Where the API sends OTLP: the chart's collector, or the existing one. */}}
{{- define "mlapi.otlpEndpoint" -}}
{{- if .Values.collector.enabled }}
{{- printf "http://%s:4317" (include "mlapi.collectorName" .) }}
{{- else }}
{{- required "collector.externalEndpoint is required when collector.enabled is false" .Values.collector.externalEndpoint }}
{{- end }}
{{- end }}

{{/* The restricted Pod Security Standard, for both components' containers. */}}
{{- define "mlapi.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end }}

{{- define "mlapi.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}
