{{/* The chart's name, or nameOverride. */}}
{{- define "rollguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's fullname: fullnameOverride, else the release name when it
holds the chart's name, else RELEASE-CHART. It names the webhook
configurations, the RBAC objects, the ConfigMap and the Deployment.
*/}}
{{- define "rollguard.fullname" -}}
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

{{/* The Service the API server calls, named in the serving certificate. */}}
{{- define "rollguard.serviceName" -}}
{{- printf "%s-webhook" (include "rollguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret holding the serving certificate, mounted at /certs. */}}
{{- define "rollguard.certSecret" -}}
{{- printf "%s-webhook-tls" (include "rollguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The cert-manager Certificate (certManager.enabled). */}}
{{- define "rollguard.certificate" -}}
{{- printf "%s-webhook" (include "rollguard.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "rollguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the webhook's pods. */}}
{{- define "rollguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end }}

{{/* Labels of every object. */}}
{{- define "rollguard.labels" -}}
helm.sh/chart: {{ include "rollguard.chart" . }}
{{ include "rollguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Where the webhook configurations apply: namespaces opted in with
rollguard.io/inject=enabled, never the system ones or the release's own
(the webhook must not judge its own pods: they would wait for themselves).
*/}}
{{- define "rollguard.namespaceSelector" -}}
namespaceSelector:
  matchLabels:
    rollguard.io/inject: enabled
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: [kube-system, kube-public, kube-node-lease, {{ .Release.Namespace | quote }}]
{{- end }}

{{/* The CA: cert-manager's injector, or (self-signed) the webhook itself. */}}
{{- define "rollguard.webhookAnnotations" -}}
{{- if .Values.certManager.enabled }}
annotations:
  cert-manager.io/inject-ca-from: {{ printf "%s/%s" .Release.Namespace (include "rollguard.certificate" .) }}
{{- end }}
{{- end }}
