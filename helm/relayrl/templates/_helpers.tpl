{{/* Names, standard labels and shared pod pieces of the relayrl chart. */}}

{{- define "relayrl.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "relayrl.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "relayrl.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Standard labels (app.kubernetes.io/*); call with (dict "ctx" $ "component" "learner"). */}}
{{- define "relayrl.labels" -}}
helm.sh/chart: {{ include "relayrl.chart" .ctx }}
{{ include "relayrl.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: relayrl
{{- end -}}

{{- define "relayrl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relayrl.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "relayrl.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .ctx.Values.image.tag -}}
{{- if .gpu }}{{ $tag = printf "%s%s" $tag .ctx.Values.image.gpuTagSuffix }}{{ end -}}
{{ printf "%s:%s" .ctx.Values.image.repository $tag }}
{{- end -}}

{{- define "relayrl.redisHost" -}}
{{- if .Values.redis.internal -}}
{{ include "relayrl.fullname" . }}-redis:6379
{{- else -}}
{{ required "redis.external.address is required when redis.internal is false" .Values.redis.external.address }}
{{- end -}}
{{- end -}}

{{/* Whether Redis asks for a password: the internal one always (from the run's Secret), an
external one when redis.external.passwordSecret names a Secret. */}}
{{- define "relayrl.redisAuth" -}}
{{- if or .Values.redis.internal .Values.redis.external.passwordSecret }}true{{ end -}}
{{- end -}}

{{/* The password's Secret and key: (dict "name" ... "key" ...) as YAML. */}}
{{- define "relayrl.redisPasswordRef" -}}
{{- if .Values.redis.internal -}}
{name: {{ include "relayrl.authSecret" . }}, key: redis-password}
{{- else -}}
{name: {{ .Values.redis.external.passwordSecret }}, key: password}
{{- end -}}
{{- end -}}

{{/* The redis:// URL; the password comes from $(REDIS_PASSWORD), which Kubernetes expands in
args and env values from the container's environment (relayrl.env defines it first). */}}
{{- define "relayrl.redisUrl" -}}
{{- $db := ternary 0 (int .Values.redis.external.database) .Values.redis.internal -}}
{{- if include "relayrl.redisAuth" . -}}
redis://:$(REDIS_PASSWORD)@{{ include "relayrl.redisHost" . }}/{{ $db }}
{{- else -}}
redis://{{ include "relayrl.redisHost" . }}/{{ $db }}
{{- end -}}
{{- end -}}

{{- define "relayrl.authSecret" -}}
{{- default (printf "%s-auth" (include "relayrl.fullname" .)) .Values.auth.existingSecret -}}
{{- end -}}

{{/* Which autoscaler renders: "keda" or "hpa". */}}
{{- define "relayrl.autoscaler" -}}
{{- $engine := .Values.autoscaling.engine -}}
{{- if eq $engine "auto" -}}
{{- ternary "keda" "hpa" (.Capabilities.APIVersions.Has "keda.sh/v1alpha1") -}}
{{- else -}}
{{- $engine -}}
{{- end -}}
{{- end -}}

{{- define "relayrl.serviceMonitors" -}}
{{- $on := .Values.serviceMonitor.enabled -}}
{{- if eq (toString $on) "auto" -}}
{{- .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" -}}
{{- else -}}
{{- $on -}}
{{- end -}}
{{- end -}}

{{/* Env every relayrl process gets: the Redis password (if any) and the auth token. */}}
{{- define "relayrl.env" -}}
{{- if include "relayrl.redisAuth" . }}
- name: REDIS_PASSWORD
  valueFrom: {secretKeyRef: {{ include "relayrl.redisPasswordRef" . }}}
{{- end }}
# the URL (with the password) in the environment, not in args that any process in the pod can read
- name: RELAYRL_REDIS_URL
  value: {{ include "relayrl.redisUrl" . | quote }}
- name: RELAYRL_AUTH_TOKEN
  valueFrom: {secretKeyRef: {name: {{ include "relayrl.authSecret" . }}, key: token}}
- name: OMP_NUM_THREADS
  value: "1"
{{- end -}}

{{/* GPU resources and node placement; call with (dict "ctx" $ "spec" .Values.learner). */}}
{{- define "relayrl.resources" -}}
{{- $res := deepCopy .spec.resources -}}
{{- if and .spec.gpu .spec.gpu.enabled -}}
{{- $_ := set $res "limits" (merge (dict .spec.gpu.resourceName (int .spec.gpu.count)) ($res.limits | default dict)) -}}
{{- end -}}
{{ toYaml $res }}
{{- end -}}

{{- define "relayrl.placement" -}}
{{- with .spec.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .spec.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .ctx.Values.image.pullSecrets }}
imagePullSecrets:
  {{- range $name, $_ := . }}
  - name: {{ $name }}
  {{- end }}
{{- end }}
{{- end -}}

{{- define "relayrl.volumes" -}}
- name: config
  configMap: {name: {{ include "relayrl.fullname" . }}-config}
- name: tmp
  emptyDir: {}
{{- end -}}

{{- define "relayrl.volumeMounts" -}}
- {name: config, mountPath: /etc/relayrl, readOnly: true}
- {name: tmp, mountPath: /tmp}
{{- end -}}

{{- define "relayrl.grpcProbes" -}}
readinessProbe:
  grpc: {port: {{ .port }}}
  periodSeconds: 10
livenessProbe:
  grpc: {port: {{ .port }}}
  initialDelaySeconds: 30
  periodSeconds: 20
startupProbe:
  grpc: {port: {{ .port }}}
  failureThreshold: 60
  periodSeconds: 5
{{- end -}}

{{- define "relayrl.modelVolume" -}}
- name: models
  {{- if .Values.model.initTiny }}
  emptyDir: {}
  {{- else }}
  {{- toYaml (required "model.volume is required when model.initTiny is false" .Values.model.volume) | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "relayrl.modelInit" -}}
{{- if .ctx.Values.model.initTiny }}
initContainers:
  - name: init-tiny-model
    image: {{ include "relayrl.image" (dict "ctx" .ctx "gpu" .gpu) }}
    imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
    args: ["model", "init-tiny", {{ .ctx.Values.model.path | quote }}, "--config", "/etc/relayrl/run.yaml"]
    securityContext: {{- toYaml .ctx.Values.securityContext | nindent 6 }}
    volumeMounts:
      {{- include "relayrl.volumeMounts" .ctx | nindent 6 }}
      - {name: models, mountPath: /models}
{{- end }}
{{- end -}}
