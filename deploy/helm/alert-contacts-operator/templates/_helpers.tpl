{{/*
Names, labels and the webhook certificates shared by the templates.
*/}}

{{- define "aco.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-<chart>, or the release name when it already contains the chart name. */}}
{{- define "aco.fullname" -}}
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

{{- define "aco.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aco.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aco.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "aco.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alert-contacts
{{- end }}

{{- define "aco.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aco.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "aco.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Service in front of the webhook and metrics ports (every replica). */}}
{{- define "aco.serviceName" -}}
{{- include "aco.fullname" . }}
{{- end }}

{{/* The Service Alertmanager posts to: the leader's Pod only (receiver-service.yaml). */}}
{{- define "aco.receiverServiceName" -}}
{{- printf "%s-receiver" (include "aco.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The Secret with ca.crt, tls.crt and tls.key of the webhook server. */}}
{{- define "aco.webhookSecretName" -}}
{{- printf "%s-webhook-tls" (include "aco.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aco.certificateName" -}}
{{- printf "%s-webhook" (include "aco.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Mount path of the webhook Secret in the container (--webhook-cert-dir). */}}
{{- define "aco.webhookCertDir" -}}
/etc/alert-contacts/webhook-tls
{{- end }}

{{/* The DNS names the API server may use for the webhook Service; it verifies
<service>.<namespace>.svc. */}}
{{- define "aco.webhookDNSNames" -}}
{{- $svc := include "aco.serviceName" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) | toJson }}
{{- end }}

{{/*
The self-contained webhook certificates as base64 strings {caCert, tlsCert, tlsKey}.
Reuses the Secret of a previous installation when `lookup` finds it complete
(helm install/upgrade); generates a new CA and serving certificate otherwise
(first install, `helm template`, after the Secret was deleted to rotate).
The result is kept in .Values for the rest of this rendering, so the Secret,
the caBundle and the Deployment's checksum agree.
*/}}
{{- define "aco.webhookCerts" -}}
{{- if not (hasKey .Values "_webhookCerts") }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "aco.webhookSecretName" .) }}
{{- $ca := dig "data" "ca.crt" "" $existing }}
{{- $crt := dig "data" "tls.crt" "" $existing }}
{{- $key := dig "data" "tls.key" "" $existing }}
{{- if and $ca $crt $key }}
{{- $_ := set .Values "_webhookCerts" (dict "caCert" $ca "tlsCert" $crt "tlsKey" $key) }}
{{- else }}
{{- $days := int .Values.webhook.certificateValidityDays }}
{{- $names := include "aco.webhookDNSNames" . | fromJsonArray }}
{{- $caPair := genCA (printf "%s-ca" (include "aco.fullname" .)) $days }}
{{- $pair := genSignedCert (index $names 2) nil $names $days $caPair }}
{{- $_ := set .Values "_webhookCerts" (dict "caCert" ($caPair.Cert | b64enc) "tlsCert" ($pair.Cert | b64enc) "tlsKey" ($pair.Key | b64enc)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret with the receiver's bearer token (created by the chart or named by the user). */}}
{{- define "aco.receiverTokenSecret" -}}
{{- if .Values.delivery.receiver.token.create }}
{{- printf "%s-receiver" (include "aco.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- required "delivery.receiver.token.existingSecret is required when delivery.receiver.token.create is false" .Values.delivery.receiver.token.existingSecret }}
{{- end }}
{{- end }}

{{/* Mount paths of the receiver's TLS Secret and of the extra CA bundle. */}}
{{- define "aco.receiverCertDir" -}}
/etc/alert-contacts/receiver-tls
{{- end }}

{{- define "aco.extraCADir" -}}
/etc/alert-contacts/extra-ca
{{- end }}

{{- define "aco.templatesDir" -}}
/etc/alert-contacts/templates
{{- end }}
