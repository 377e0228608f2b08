{{/* Names, labels and small pieces shared by the templates. */}}

{{- define "pi0.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name; the components' names add "-agent", "-operator", "-webhook". */}}
{{- define "pi0.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "pi0.agent.fullname" -}}{{ include "pi0.fullname" . }}-agent{{- end }}
{{- define "pi0.operator.fullname" -}}{{ include "pi0.fullname" . }}-operator{{- end }}
{{- define "pi0.webhook.fullname" -}}{{ include "pi0.fullname" . }}-webhook{{- end }}
{{/* The Secret that holds the webhook's serving pair (and, self-managed, its CA). */}}
{{- define "pi0.webhook.secretName" -}}
{{- if eq .Values.webhook.certificates.mode "userProvided" }}
{{- .Values.webhook.certificates.userProvided.secretName }}
{{- else }}
{{- include "pi0.webhook.fullname" . }}-tls
{{- end }}
{{- end }}
{{- define "pi0.operator.leaseName" -}}
{{- default (include "pi0.operator.fullname" .) .Values.operator.leaderElection.leaseName }}
{{- end }}

{{/* The Secret with the fleet feed's serving pair and CA (tls.crt, tls.key, ca.crt). */}}
{{- define "pi0.fleetFeed.secretName" -}}
{{- default (printf "%s-fleet-tls" (include "pi0.fullname" .)) .Values.fleetFeed.existingSecret }}
{{- end }}

{{/* The fleet feed's reader flags, the same in the webhook and the operator (its standby reads
     the leader's feed): the publisher is the holder of the operator's Lease. */}}
{{- define "pi0.fleetFeed.readerArgs" -}}
{{- $f := .Values.fleetFeed -}}
- --fleet-lease={{ .Release.Namespace }}/{{ include "pi0.operator.leaseName" . }}
- --fleet-ca-file=/var/run/pi0-fleet/ca/ca.crt
- --fleet-server-name={{ $f.serverName }}
- --fleet-token-file=/var/run/pi0-fleet/token/token
{{- with $f.fallbackAfter }}
- --fleet-fallback-after={{ . }}
{{- end }}
{{- end }}

{{/* A reader's mounts: the feed's CA and its projected token. */}}
{{- define "pi0.fleetFeed.readerMounts" -}}
- name: fleet-ca
  mountPath: /var/run/pi0-fleet/ca
  readOnly: true
- name: fleet-token
  mountPath: /var/run/pi0-fleet/token
  readOnly: true
{{- end }}

{{/* A reader's volumes: only ca.crt of the feed's Secret (never its key), and a token for the
     feed's audience that the kubelet renews (at 80 % of its hour) and the program re-reads
     every minute. */}}
{{- define "pi0.fleetFeed.readerVolumes" -}}
- name: fleet-ca
  secret:
    secretName: {{ include "pi0.fleetFeed.secretName" . }}
    defaultMode: 0440
    items:
      - key: ca.crt
        path: ca.crt
- name: fleet-token
  projected:
    defaultMode: 0440
    sources:
      - serviceAccountToken:
          audience: {{ .Values.fleetFeed.audience | quote }}
          expirationSeconds: 3600
          path: token
{{- end }}

{{- define "pi0.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object; call with (dict "ctx" $ "component" "agent"). */}}
{{- define "pi0.labels" -}}
helm.sh/chart: {{ include "pi0.chart" .ctx }}
{{ include "pi0.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: pi0
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The labels that select a component's pods (immutable in a Deployment's selector). */}}
{{- define "pi0.selectorLabels" -}}
app.kubernetes.io/name: {{ include "pi0.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "pi0.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The hardened pod security context shared by every pod. */}}
{{- define "pi0.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The hardened container security context shared by every container. */}}
{{- define "pi0.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* kube-system, the release namespace and the configured ones, without repeats. */}}
{{- define "pi0.webhook.excludedNamespaces" -}}
{{- $all := concat (list "kube-system" .Release.Namespace) .Values.webhook.excludedNamespaces }}
{{- join "," (uniq $all) }}
{{- end }}

{{/* The webhook Service's DNS names, as the apiserver calls it. */}}
{{- define "pi0.webhook.servingNames" -}}
{{- $svc := include "pi0.webhook.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- printf "%s.%s.svc,%s.%s.svc.%s" $svc $ns $svc $ns .Values.clusterDomain }}
{{- end }}

{{/* policy/v1 PodDisruptionBudget from Kubernetes 1.21 on, policy/v1beta1 before. The version
     decides as well as the API list: `helm template` offers every API it knows whatever
     --kube-version says, while an install sees what the cluster serves. */}}
{{- define "pi0.pdb.apiVersion" -}}
{{- if and (.Capabilities.APIVersions.Has "policy/v1") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end }}
{{- end }}

{{/* Whether the Prometheus Operator's API is served (ServiceMonitor, PodMonitor, PrometheusRule). */}}
{{- define "pi0.monitoring.available" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}

{{/* Pod affinity "soft" or "hard" against the component's own pods, per node. */}}
{{- define "pi0.antiAffinity" -}}
{{- $term := dict "topologyKey" "kubernetes.io/hostname" "labelSelector" (dict "matchLabels" (fromYaml (include "pi0.selectorLabels" (dict "ctx" .ctx "component" .component)))) -}}
podAntiAffinity:
{{- if eq .mode "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - {{ toYaml $term | nindent 6 | trim }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        {{- toYaml $term | nindent 8 }}
{{- end }}
{{- end }}
