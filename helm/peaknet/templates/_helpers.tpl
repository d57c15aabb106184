{{/* Everything is named after the release (or fullnameOverride); RayJobs select the cluster by this name. */}}
{{- define "peaknet.fullname" -}}
{{- .Values.fullnameOverride | default .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "peaknet.selectorLabels" -}}
app.kubernetes.io/name: {{ .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "peaknet.labels" -}}
{{ include "peaknet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "peaknet.claimName" -}}
{{- .Values.output.existingClaim | default (printf "%s-output" (include "peaknet.fullname" .)) -}}
{{- end -}}

{{/* The pipeline config: configs/<pipelineFile>, `pipeline` merged over it, output_dir on the volume. */}}
{{- define "peaknet.pipeline" -}}
{{- $text := .Files.Get (printf "configs/%s" .Values.pipelineFile) -}}
{{- if not $text }}
{{- fail (printf "pipelineFile %q is not in the chart's configs/ (examples/configs/)" .Values.pipelineFile) }}
{{- end -}}
{{- $cfg := mergeOverwrite (fromYaml $text) (deepCopy .Values.pipeline) -}}
{{- $writer := $cfg.writer | default dict -}}
{{- $mount := trimSuffix "/" .Values.output.mountPath -}}
{{- $out := $writer.output_dir | default "cxi" -}}
{{- if not (hasPrefix "/" $out) }}{{ $out = printf "%s/%s" $mount $out }}{{ end -}}
{{- if not (hasPrefix (printf "%s/" $mount) $out) }}
{{- fail (printf "pipeline.writer.output_dir (%q) must be under output.mountPath (%s), or the CXI files stay inside the pods: give a path relative to it, e.g. cxi" $out $mount) }}
{{- end -}}
{{- $_ := set $writer "output_dir" $out -}}
{{- $_ := set $cfg "writer" $writer -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Resources with requests = limits (KubeRay derives num-cpus, memory and num-gpus from limits). */}}
{{- define "peaknet.resources" -}}
{{- $r := dict "cpu" .resources.cpu "memory" .resources.memory -}}
{{- if gt (int (default 0 .gpus)) 0 }}{{ $_ := set $r "nvidia.com/gpu" (int .gpus) }}{{ end -}}
requests:
  {{- toYaml $r | nindent 2 }}
limits:
  {{- toYaml $r | nindent 2 }}
{{- end -}}

{{/* Pod metadata: chart labels, then global and group labels and annotations. Args: root, group. */}}
{{- define "peaknet.podMetadata" -}}
labels:
  {{- include "peaknet.labels" .root | nindent 2 }}
  {{- with merge (deepCopy (.group.podLabels | default dict)) .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- with merge (deepCopy (.group.podAnnotations | default dict)) .root.Values.podAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod-level settings every pod shares (Ray pods and RayJob submitters). Args: root, group. */}}
{{- define "peaknet.podCommon" -}}
{{- $v := .root.Values }}
{{- with $v.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .group.priorityClassName | default $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $v.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $v.podSecurityContext | nindent 2 }}
{{- end -}}

{{/* A Ray pod's spec without its container. Args: root, group. */}}
{{- define "peaknet.podSpec" -}}
{{- include "peaknet.podCommon" . }}
{{- with .group.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .group.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .group.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: pipeline-config
    configMap:
      name: {{ include "peaknet.fullname" .root }}-pipeline
  - name: dshm
    emptyDir:
      medium: Memory
      sizeLimit: {{ .group.shmSize }}
  - name: output
    persistentVolumeClaim:
      claimName: {{ include "peaknet.claimName" .root }}
  {{- with concat .root.Values.extraVolumes (.group.extraVolumes | default list) }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Image, security, env: what every container of the chart carries. Args: root, group, image. */}}
{{- define "peaknet.containerCommon" -}}
image: {{ printf "%s:%s" .image.repository .image.tag | quote }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
{{- with concat .root.Values.env (.group.env | default list) }}
env:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with concat .root.Values.envFrom (.group.envFrom | default list) }}
envFrom:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The Ray container after its name. Args: root, group, worker (bool). */}}
{{- define "peaknet.rayContainer" -}}
{{ include "peaknet.containerCommon" (dict "root" .root "group" .group "image" .root.Values.image) }}
resources:
  {{- include "peaknet.resources" .group | nindent 2 }}
volumeMounts:
  - name: pipeline-config
    mountPath: /etc/peaknet
    readOnly: true
  - name: dshm
    mountPath: /dev/shm
  - name: output
    mountPath: {{ .root.Values.output.mountPath }}
  {{- with concat .root.Values.extraVolumeMounts (.group.extraVolumeMounts | default list) }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
ports:
  {{- if not .worker }}
  - {name: gcs-server, containerPort: 6379}
  - {name: dashboard, containerPort: 8265}
  - {name: client, containerPort: 10001}
  {{- end }}
  - {name: metrics, containerPort: {{ .root.Values.metrics.port }}}
{{- if .worker }}
lifecycle:
  preStop:  # leave the cluster cleanly when the pod is deleted or scaled down
    exec:
      command: ["/bin/sh", "-c", "ray stop"]
{{- end }}
{{- end -}}

{{/* KubeRay wants every rayStartParams value as a string. */}}
{{- define "peaknet.rayStartParams" -}}
{{- $out := dict -}}
{{- range $k, $v := .params }}{{ $_ := set $out $k (toString $v) }}{{ end -}}
{{- $_ := set $out "metrics-export-port" (toString .port) -}}
{{- toYaml $out -}}
{{- end -}}

{{/* The RayCluster spec: the chart's RayCluster, and the rayClusterSpec of the whole-pipeline RayJob. */}}
{{- define "peaknet.clusterSpec" -}}
{{- $v := .Values -}}
rayVersion: {{ $v.rayVersion | quote }}
{{- if $v.autoscaling.enabled }}
enableInTreeAutoscaling: true
autoscalerOptions:
  upscalingMode: {{ $v.autoscaling.upscalingMode }}
  idleTimeoutSeconds: {{ $v.autoscaling.idleTimeoutSeconds }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  securityContext:
    {{- toYaml $v.securityContext | nindent 4 }}
  resources:
    {{- include "peaknet.resources" $v.autoscaling | nindent 4 }}
{{- end }}
headGroupSpec:
  rayStartParams:
    {{- include "peaknet.rayStartParams" (dict "params" $v.head.rayStartParams "port" $v.metrics.port) | nindent 4 }}
  template:
    metadata:
      {{- include "peaknet.podMetadata" (dict "root" . "group" $v.head) | nindent 6 }}
    spec:
      {{- include "peaknet.podSpec" (dict "root" . "group" $v.head) | trim | nindent 6 }}
      containers:
        - name: ray-head
          {{- include "peaknet.rayContainer" (dict "root" . "group" $v.head "worker" false) | nindent 10 }}
workerGroupSpecs:
{{- range $name, $group := $v.workerGroups }}
{{- if not $group.disabled }}
{{- $min := ternary $group.minReplicas $group.replicas $v.autoscaling.enabled }}
{{- $max := ternary $group.maxReplicas $group.replicas $v.autoscaling.enabled }}
  - groupName: {{ $name }}
    replicas: {{ $group.replicas }}
    minReplicas: {{ $min }}
    maxReplicas: {{ $max }}
    rayStartParams:
      {{- include "peaknet.rayStartParams" (dict "params" $group.rayStartParams "port" $v.metrics.port) | nindent 6 }}
    template:
      metadata:
        {{- include "peaknet.podMetadata" (dict "root" $ "group" $group) | nindent 8 }}
      spec:
        {{- include "peaknet.podSpec" (dict "root" $ "group" $group) | trim | nindent 8 }}
        containers:
          - name: ray-worker
            {{- include "peaknet.rayContainer" (dict "root" $ "group" $group "worker" true) | nindent 12 }}
{{- end }}
{{- end }}
{{- end -}}

{{/* What every RayJob shares: entrypoint, deadlines, a small restricted submitter. Args: root, command. */}}
{{- define "peaknet.rayJobCommon" -}}
{{- $v := .root.Values -}}
entrypoint: {{ printf "peaknet-pipeline %s --config /etc/peaknet/pipeline.yaml" .command }}
submissionMode: K8sJobMode
activeDeadlineSeconds: {{ $v.rayJob.activeDeadlineSeconds }}
preRunningDeadlineSeconds: {{ $v.rayJob.preRunningDeadlineSeconds }}
submitterPodTemplate:
  metadata:
    {{- include "peaknet.podMetadata" (dict "root" .root "group" dict) | nindent 4 }}
  spec:
    restartPolicy: Never
    {{- include "peaknet.podCommon" (dict "root" .root "group" dict) | trim | nindent 4 }}
    containers:
      - name: ray-job-submitter
        {{- include "peaknet.containerCommon" (dict "root" .root "group" dict "image" $v.rayJob.submitter.image) | nindent 8 }}
        resources:
          {{- include "peaknet.resources" $v.rayJob.submitter | nindent 10 }}
{{- end -}}
