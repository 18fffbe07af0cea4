{{/* Names: "<release>-meridian" unless the release name already says meridian. */}}
{{- define "meridian.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "meridian.gateway" -}}{{ include "meridian.fullname" . }}-gateway{{- end -}}
{{- define "meridian.raftService" -}}{{ include "meridian.fullname" . }}-gateway-raft{{- end -}}
{{- define "meridian.federationService" -}}{{ include "meridian.fullname" . }}-gateway-federation{{- end -}}
{{- define "meridian.agent" -}}{{ include "meridian.fullname" . }}-agent{{- end -}}
{{- define "meridian.adminSecret" -}}{{ include "meridian.fullname" . }}-admin{{- end -}}
{{/* The Secret holding the admin token: the one named, else the chart's own when it creates one, else none. */}}
{{- define "meridian.adminTokenSecret" -}}
{{- if .Values.gateway.adminToken.existingSecret -}}
{{- .Values.gateway.adminToken.existingSecret -}}
{{- else if .Values.gateway.adminToken.create -}}
{{- include "meridian.adminSecret" . -}}
{{- end -}}
{{- end -}}

{{- define "meridian.labels" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "meridian.gatewaySelector" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "meridian.agentSelector" -}}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{/* The checked cluster name of this release's agent. */}}
{{- define "meridian.clusterName" -}}
{{- $name := required "agent.clusterName is required: the name of this Kubernetes cluster (e.g. --set agent.clusterName=us-east)" .Values.agent.clusterName -}}
{{- if not (regexMatch "^[a-z0-9][a-z0-9._-]{0,62}$" $name) -}}
{{- fail (printf "agent.clusterName %q: use at most 63 lowercase letters, digits, '-', '.' or '_', starting with a letter or digit" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{/* The issuer of the leaf certificates. */}}
{{- define "meridian.issuerRef" -}}
{{- if .Values.tls.certManager.issuerRef -}}
{{- toYaml .Values.tls.certManager.issuerRef -}}
{{- else -}}
name: {{ include "meridian.fullname" . }}-ca
kind: Issuer
group: cert-manager.io
{{- end -}}
{{- end -}}

{{- define "meridian.gatewayTlsSecret" -}}
{{- if eq .Values.tls.mode "secrets" -}}
{{- required "tls.secrets.gateway is required with tls.mode=secrets" .Values.tls.secrets.gateway -}}
{{- else -}}
{{- include "meridian.gateway" . }}-tls
{{- end -}}
{{- end -}}

{{- define "meridian.agentTlsSecret" -}}
{{- if eq .Values.tls.mode "secrets" -}}
{{- required "tls.secrets.agent is required with tls.mode=secrets" .Values.tls.secrets.agent -}}
{{- else -}}
{{- include "meridian.agent" . }}-tls
{{- end -}}
{{- end -}}

{{/* Pod-level security context shared by Meridian pods. */}}
{{- define "meridian.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int64 .Values.securityContext.runAsUser }}
runAsGroup: {{ int64 .Values.securityContext.runAsGroup }}
fsGroup: {{ int64 .Values.securityContext.runAsGroup }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "meridian.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{/* An agent's certificate: (dict "root" $ "cluster" NAME "name" RESOURCE). */}}
{{- define "meridian.agentCertificate" -}}
{{- $cm := .root.Values.tls.certManager -}}
{{- if not (regexMatch "^[a-z0-9][a-z0-9._-]{0,62}$" .cluster) -}}
{{- fail (printf "cluster name %q: use at most 63 lowercase letters, digits, '-', '.' or '_'" .cluster) -}}
{{- end -}}
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "meridian.labels" .root | nindent 4 }}
    app.kubernetes.io/component: agent
    meridian.dev/cluster: {{ .cluster }}
spec:
  secretName: {{ .name }}-tls
  commonName: {{ .cluster }}
  duration: {{ $cm.duration }}
  renewBefore: {{ $cm.renewBefore }}
  privateKey:
    algorithm: ECDSA
    size: 256
    encoding: PKCS8
    rotationPolicy: Always
  usages:
    - digital signature
    - client auth
  uris:
    - spiffe://meridian/cluster/{{ .cluster }}
  issuerRef:
    {{- include "meridian.issuerRef" .root | nindent 4 }}
{{- end -}}
