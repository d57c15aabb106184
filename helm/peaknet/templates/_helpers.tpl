{{/* The RayCluster and everything else are named after the release; RayJobs select it by this name. */}}
{{- define "peaknet.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "peaknet.labels" -}}
app.kubernetes.io/name: peaknet
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "peaknet.claimName" -}}
{{- .Values.output.existingClaim | default (printf "%s-output" (include "peaknet.name" .)) -}}
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

{{/* What every Ray pod carries: config, /dev/shm, output volume, security. Args: root, group. */}}
{{- define "peaknet.volumeMounts" -}}
- name: pipeline-config
  mountPath: /etc/peaknet
  readOnly: true
- name: dshm
  mountPath: /dev/shm
- name: output
  mountPath: {{ .Values.output.mountPath }}
{{- end -}}

{{- define "peaknet.volumes" -}}
- name: pipeline-config
  configMap:
    name: {{ include "peaknet.name" .root }}-pipeline
- name: dshm
  emptyDir:
    medium: Memory
    sizeLimit: {{ .group.shmSize }}
- name: output
  persistentVolumeClaim:
    claimName: {{ include "peaknet.claimName" .root }}
{{- end -}}

{{- define "peaknet.podSpec" -}}
{{- $root := .root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
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
  {{- include "peaknet.volumes" . | nindent 2 }}
{{- end -}}

{{- define "peaknet.container" -}}
image: {{ printf "%s:%s" .root.Values.image.repository .root.Values.image.tag | quote }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
resources:
  {{- include "peaknet.resources" .group | nindent 2 }}
volumeMounts:
  {{- include "peaknet.volumeMounts" .root | nindent 2 }}
{{- end -}}

{{/* KubeRay wants every rayStartParams value as a string. */}}
{{- define "peaknet.rayStartParams" -}}
{{- $out := dict -}}
{{- range $k, $v := . }}{{ $_ := set $out $k (toString $v) }}{{ end -}}
{{- toYaml $out -}}
{{- end -}}
