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

{{/* Service accounts and the usernames the API server gives their tokens. */}}
{{- define "tideslice.schedulerServiceAccount" -}}
{{ include "tideslice.fullname" . }}-scheduler
{{- end -}}

{{- define "tideslice.agentServiceAccount" -}}
{{ include "tideslice.fullname" . }}-device-plugin
{{- end -}}

{{- define "tideslice.schedulerUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "tideslice.schedulerServiceAccount" . }}
{{- end -}}

{{- define "tideslice.agentUser" -}}
system:serviceaccount:{{ .Release.Namespace }}:{{ include "tideslice.agentServiceAccount" . }}
{{- end -}}

{{/* The lease tideslice-scheduler's leader holds; agents check a bind's fencing term against it. */}}
{{- define "tideslice.leaseName" -}}
{{ include "tideslice.fullname" . }}-scheduler
{{- end -}}

{{/* The ConfigMap the scheduler publishes its Ed25519 public key in (key ed25519.pub, PEM). */}}
{{- define "tideslice.assignmentKeyConfigMap" -}}
tideslice-assignment-key
{{- end -}}

{{/* The Secret holding the scheduler's Ed25519 signing key. */}}
{{- define "tideslice.signingSecret" -}}
{{ default (printf "%s-assignment-signing-key" (include "tideslice.fullname" .)) .Values.scheduler.assignmentSigning.existingSecret }}
{{- end -}}

{{/* Pod annotations only TideSlice writes. */}}
{{- define "tideslice.ownedAnnotations" -}}
['tideslice.io/assignment', 'tideslice.io/checkpoint-notice', 'tideslice.io/checkpoint-deadline', 'tideslice.io/filter-reasons']
{{- end -}}

{{/* CEL: the pod (object) asks for TideSlice or aliased resources in any container's limits or
     requests, the names the webhook's PreFilter reads (scheduler/core/request.h). */}}
{{- define "tideslice.celAsksForAccelerators" -}}
[object.spec.containers, has(object.spec.initContainers) ? object.spec.initContainers : []].exists(cs, cs.exists(c, has(c.resources) && [has(c.resources.limits) ? c.resources.limits : {}, has(c.resources.requests) ? c.resources.requests : {}].exists(m, m.exists(k, k.startsWith('tideslice.io/') || k.startsWith('nvidia.com/gpu') || k.startsWith('huawei.com/Ascend')))))
{{- end -}}

{{/* The key of the signing Secret that holds the PEM: cert-manager writes tls.key. */}}
{{- define "tideslice.signingSecretKey" -}}
{{- if .Values.scheduler.assignmentSigning.existingSecret -}}
{{ .Values.scheduler.assignmentSigning.existingSecretKey }}
{{- else if .Values.webhook.certManager.enabled -}}
tls.key
{{- else -}}
ed25519.pem
{{- end -}}
{{- end -}}

{{/* Fields every webhook entry shares; dict root, path, caBundle, excluded (namespaces). */}}
{{- define "tideslice.webhookCommon" -}}
admissionReviewVersions: [v1]
sideEffects: None
timeoutSeconds: {{ .root.Values.webhook.timeoutSeconds }}
clientConfig:
  service:
    name: {{ include "tideslice.webhookService" .root }}
    namespace: {{ .root.Release.Namespace }}
    path: {{ .path }}
    port: 443
  {{- if not .root.Values.webhook.certManager.enabled }}
  caBundle: {{ .caBundle }}
  {{- end }}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values:
        {{- toYaml .excluded | nindent 8 }}
{{- end -}}
