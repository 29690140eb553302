{{/* The chart's name. */}}
{{- define "viz-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name when it already contains the chart
name (release "viz-operator" gives the names config/default gives), else
<release>-<chart>. Kept to 40 characters so suffixes like -leader-election-rolebinding fit.
*/}}
{{- define "viz-operator.fullname" -}}
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

{{- define "viz-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "viz-operator.labels" -}}
app.kubernetes.io/name: {{ include "viz-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{ include "viz-operator.commonLabels" . }}
{{- end }}

{{/* Labels of every object but the ones selectors use. */}}
{{- define "viz-operator.commonLabels" -}}
helm.sh/chart: {{ include "viz-operator.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: viz-operator
{{- end }}

{{/* The manager pods' selector labels (config/manager/manager.yaml uses the first and last). */}}
{{- define "viz-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "viz-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{- define "viz-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-controller-manager" (include "viz-operator.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Where the providers file is mounted. */}}
{{- define "viz-operator.providersDir" -}}/etc/vizops/providers{{- end }}

{{/* The providers file's content. */}}
{{- define "viz-operator.providersYAML" -}}
{{ toYaml (dict "providers" .Values.providers) }}
{{- end }}
