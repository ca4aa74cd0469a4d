{{/* Names: a release called "signet" makes the names of config/default. */}}
{{- define "signet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "signet.fullname" -}}
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

{{- define "signet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "signet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "signet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "signet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The manager's pods: what its Deployment and Services select. */}}
{{- define "signet.managerSelectorLabels" -}}
{{ include "signet.selectorLabels" . }}
app.kubernetes.io/component: manager
{{- end }}

{{- define "signet.managerServiceAccount" -}}
{{ include "signet.fullname" . }}-controller-manager
{{- end }}

{{- define "signet.serverServiceAccount" -}}
{{ include "signet.fullname" . }}-jwks-server
{{- end }}

{{- define "signet.jwksService" -}}
{{ include "signet.fullname" . }}-jwks
{{- end }}

{{- define "signet.tlsSecret" -}}
{{ default (printf "%s-jwks-tls" (include "signet.fullname" .)) .Values.tls.secretName }}
{{- end }}

{{- define "signet.publicBaseURL" -}}
{{- if .Values.publicBaseURL }}
{{- .Values.publicBaseURL | trimSuffix "/" }}
{{- else }}
{{- printf "%s://%s.%s.svc" (ternary "https" "http" .Values.tls.enabled) (include "signet.jwksService" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{- define "signet.leaderElectionID" -}}
{{ default (printf "%s.identity.signet.dev" (include "signet.fullname" .)) .Values.leaderElectionID }}
{{- end }}

{{- define "signet.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The port of a ":9443"-style bind address. */}}
{{- define "signet.tokenPort" -}}
{{ splitList ":" .Values.token.bindAddress | last }}
{{- end }}

{{- define "signet.tokenEnabled" -}}
{{- if ne (toString .Values.token.bindAddress) "0" }}true{{ end }}
{{- end }}

{{/* A token listener on loopback only: reachable from the pod, not the Service. */}}
{{- define "signet.tokenLoopback" -}}
{{- $a := toString .Values.token.bindAddress }}
{{- if or (hasPrefix "127.0.0.1:" $a) (hasPrefix "localhost:" $a) (hasPrefix "[::1]:" $a) }}true{{ end }}
{{- end }}

{{/* "true" when a value is neither null nor "". */}}
{{- define "signet.isSet" -}}
{{- if and (not (kindIs "invalid" .)) (ne (toString .) "") }}true{{ end }}
{{- end }}

{{/* Refuse combinations the manager would refuse at start, or that break
the invariants, with a message that says what to change. */}}
{{- define "signet.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElect) }}
{{- fail "replicaCount > 1 needs leaderElect: true, or several controllers would rotate the same keys" }}
{{- end }}
{{- if and (include "signet.tokenEnabled" .) (not .Values.tls.enabled) (not (include "signet.tokenLoopback" .)) }}
{{- fail "the token API serves plain HTTP only on loopback: with tls.enabled=false set token.bindAddress=0 (or 127.0.0.1:<port>)" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.enabled) }}
{{- fail "tls.certManager.enabled needs tls.enabled" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name: the Issuer or ClusterIssuer that signs the JWKS server's certificate" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- end }}
