{{/* Names, labels and the webhook's TLS material. */}}

{{- define "pilotfish.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name, with the chart name appended unless it already contains it
(release "pilotfish" → "pilotfish"; release "prod" → "prod-pilotfish"). Kept to 40 characters so
the longest derived name ("<fullname>-sidecar-injector") stays within 63.
*/}}
{{- define "pilotfish.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pilotfish.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "pilotfish.labels" -}}
helm.sh/chart: {{ include "pilotfish.chart" . }}
{{ include "pilotfish.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pilotfish
{{- end }}

{{- define "pilotfish.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pilotfish.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "pilotfish.operatorName" -}}
{{- printf "%s-operator" (include "pilotfish.fullname" .) }}
{{- end }}

{{- define "pilotfish.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "pilotfish.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "pilotfish.peeringName" -}}
{{- default (include "pilotfish.fullname" .) .Values.operator.peering.name }}
{{- end }}

{{- define "pilotfish.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) }}
{{- end }}

{{- define "pilotfish.sidecarImage" -}}
{{- printf "%s:%s" .Values.sidecar.image.repository (default .Chart.AppVersion .Values.sidecar.image.tag) }}
{{- end }}

{{/* The Secret the operator serves the webhook with. */}}
{{- define "pilotfish.webhookSecretName" -}}
{{- default (printf "%s-webhook-tls" (include "pilotfish.fullname" .)) .Values.webhook.tls.existingSecret }}
{{- end }}

{{/* cert-manager's serving Certificate (its Secret is pilotfish.webhookSecretName). */}}
{{- define "pilotfish.certificateName" -}}
{{- printf "%s-webhook" (include "pilotfish.fullname" .) }}
{{- end }}

{{/* Fields every webhook entry shares. */}}
{{- define "pilotfish.webhookCommon" -}}
sideEffects: None
admissionReviewVersions: [v1]
timeoutSeconds: {{ .Values.webhook.timeoutSeconds }}
matchPolicy: Equivalent
{{- end }}

{{/* The DNS name the API server calls the webhook Service by. */}}
{{- define "pilotfish.serviceHost" -}}
{{- printf "%s.%s.svc" (include "pilotfish.operatorName" .) .Release.Namespace }}
{{- end }}

{{/*
The namespaces never injected: Kubernetes' own, the release's, and webhook.excludeNamespaces.
*/}}
{{- define "pilotfish.excludedNamespaces" -}}
{{- $excluded := list "kube-system" "kube-public" "kube-node-lease" .Release.Namespace }}
{{- concat $excluded .Values.webhook.excludeNamespaces | uniq | toJson }}
{{- end }}

{{/*
The generated webhook TLS material as YAML (caCert, tlsCert, tlsKey): the Secret's current contents
when it already exists (so `helm upgrade` keeps the CA and caBundle does not churn), else a new CA
and a serving certificate for the Service. Include it ONCE per render: each call of genCA makes a
new CA, so templates/webhook.yaml reads it into a variable used by the Secret and both configurations.
*/}}
{{- define "pilotfish.generatedTLS" -}}
{{- $name := include "pilotfish.webhookSecretName" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") }}
caCert: {{ index $existing.data "ca.crt" | b64dec | quote }}
tlsCert: {{ index $existing.data "tls.crt" | b64dec | quote }}
tlsKey: {{ index $existing.data "tls.key" | b64dec | quote }}
{{- else }}
{{- $service := include "pilotfish.operatorName" . }}
{{- $days := int .Values.webhook.tls.validityDays }}
{{- $hosts := list $service (printf "%s.%s" $service .Release.Namespace) (include "pilotfish.serviceHost" .) (printf "%s.cluster.local" (include "pilotfish.serviceHost" .)) }}
{{- $ca := genCA (printf "%s-webhook-ca" (include "pilotfish.fullname" .)) $days }}
{{- $cert := genSignedCert (include "pilotfish.serviceHost" .) nil $hosts $days $ca }}
caCert: {{ $ca.Cert | quote }}
tlsCert: {{ $cert.Cert | quote }}
tlsKey: {{ $cert.Key | quote }}
{{- end }}
{{- end }}

{{/* The operator's --injector-config file (its checksum rolls the operator when it changes). */}}
{{- define "pilotfish.injectorConfig" -}}
image: {{ include "pilotfish.sidecarImage" . }}
imagePullPolicy: {{ .Values.sidecar.image.pullPolicy }}
resources:
  {{- toYaml .Values.sidecar.resources | nindent 2 }}
listenPort: {{ .Values.sidecar.listenPort }}
adminPort: {{ .Values.sidecar.adminPort }}
{{- $env := list }}
{{- with .Values.sidecar.tracing.otlpEndpoint }}
{{- $env = append $env (dict "name" "OTEL_EXPORTER_OTLP_ENDPOINT" "value" .) }}
{{- $env = append $env (dict "name" "OTEL_SERVICE_NAME" "value" $.Values.sidecar.tracing.serviceName) }}
{{- end }}
{{- $env = concat $env .Values.sidecar.env }}
{{- if .Values.budgets.enabled }}
budgets:
  url: {{ .Values.webhook.url | default (printf "https://%s.%s.svc:%v" (include "pilotfish.operatorName" .) .Release.Namespace .Values.service.webhookPort) | trimSuffix "/" | quote }}
{{- end }}
{{- if $env }}
env:
  {{- toYaml $env | nindent 2 }}
{{- end }}
{{- end }}
