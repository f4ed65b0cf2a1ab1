{{- define "tideslice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tideslice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tideslice.labels" -}}
app.kubernetes.io/name: {{ include "tideslice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tideslice.selector" -}}
app.kubernetes.io/name: {{ include "tideslice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tideslice.schedulerImage" -}}
{{ .Values.image.scheduler.repository }}:{{ default .Chart.AppVersion .Values.image.scheduler.tag }}
{{- end -}}

{{- define "tideslice.devicePluginImage" -}}
{{ .Values.image.devicePlugin.repository }}:{{ default .Chart.AppVersion .Values.image.devicePlugin.tag }}
{{- end -}}

{{/* "auto" means: when the cluster serves the Prometheus operator's API. */}}
{{- define "tideslice.monitoringEnabled" -}}
{{- $v := toString .value -}}
{{- if or (eq $v "true") (and (eq $v "auto") (.root.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) -}}true{{- end -}}
{{- end -}}

{{- define "tideslice.webhookService" -}}
{{ include "tideslice.fullname" . }}-webhook
{{- end -}}
