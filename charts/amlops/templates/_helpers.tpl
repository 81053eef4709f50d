{{/* Chart name, overridable. */}}
{{- define "amlops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified name used as the prefix of every object. */}}
{{- define "amlops.fullname" -}}
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

{{/* Labels that select the operator pods; never change across upgrades. */}}
{{- define "amlops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "amlops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "amlops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "amlops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: amlops
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Name of the ServiceAccount the operator runs as. */}}
{{- define "amlops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "amlops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference: a digest wins over the tag; the tag defaults to appVersion. */}}
{{- define "amlops.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
RBAC rules for the objects the controllers reconcile, granted in every
watched namespace (cluster-wide when watching all namespaces). Kept in one
place so the ClusterRole and the per-namespace Roles cannot diverge; the
expectation lives in tests/deploy/expected-rbac.yaml.
*/}}
{{- define "amlops.watchedRules" -}}
- apiGroups: ["amlops.io"]
  resources: ["workspaces", "computetargets", "runconfigurations", "experiments"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["amlops.io"]
  resources:
    - workspaces/status
    - computetargets/status
    - runconfigurations/status
    - experiments/status
    - workspaces/finalizers
    - computetargets/finalizers
    - runconfigurations/finalizers
    - experiments/finalizers
  verbs: ["patch", "update"]
# Only the Secrets and ConfigMaps that specs reference are read; watching
# re-reconciles an object when a referenced credential changes.
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.controller.localJobs.enabled }}
# Runs of `local` ComputeTargets are Jobs; each run's source snapshot is a
# ConfigMap the operator creates, hands to the Job (patch) and deletes.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/log"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "patch", "delete"]
{{- end }}
{{- end }}
