{{/* What `helm install` prints (NOTES.txt), as a named template so the tests can render it. */}}
{{- define "peaknet.notes" -}}
{{- $name := include "peaknet.fullname" . -}}
{{- $ns := .Release.Namespace -}}
{{- $cfg := fromYaml (include "peaknet.pipeline" .) -}}
{{- if eq .Values.mode "job" -}}
RayJob {{ $name }} starts its own RayCluster, runs the whole pipeline, and deletes the cluster when the run ends.
  kubectl get rayjob {{ $name }} -n {{ $ns }} -w
  kubectl logs -n {{ $ns }} -f job/{{ $name }}         # the driver's log, from the submitter
{{- else -}}
RayCluster {{ $name }} is starting (namespace {{ $ns }}).

1. Wait for it:
     kubectl get raycluster {{ $name }} -n {{ $ns }} -w
{{- if .Values.rayJob.stages }}
2. The stages start as RayJobs ({{ join ", " .Values.rayJob.stages }}) once it is ready:
     kubectl get rayjobs -n {{ $ns }} -l app.kubernetes.io/instance={{ .Release.Name }} -w
{{- else }}
2. Start the stages, each as a RayJob against this cluster (rendered for this release with your values):
     helm template {{ .Release.Name }} <chart> -n {{ $ns }} <your -f/--set> --set 'rayJob.stages={write,infer,produce}' --show-only templates/rayjob-stages.yaml | kubectl apply -n {{ $ns }} -f -
{{- end }}
3. Watch progress (the stages meet in Ray namespace "{{ $cfg.ray | default dict | dig "namespace" "peaknet" }}"):
     kubectl exec -n {{ $ns }} -it $(kubectl get pod -n {{ $ns }} -l ray.io/cluster={{ $name }},ray.io/node-type=head -o name) -- peaknet-pipeline status --config /etc/peaknet/pipeline.yaml
     kubectl port-forward -n {{ $ns }} svc/{{ $name }}-head-svc 8265:8265   # Ray dashboard on http://localhost:8265
{{- end }}

CXI files land in {{ $cfg.writer.output_dir }} on claim {{ include "peaknet.claimName" . }}.
{{- if .Values.ingest.enabled }}
Senders reach the socket producers at {{ $name }}-ingest:{{ first .Values.ingest.ports }}.
{{- end }}

Stop a service-mode pipeline with `peaknet-pipeline stop --config /etc/peaknet/pipeline.yaml` on the head;
after `helm uninstall {{ .Release.Name }}` the output claim is kept (resource-policy: keep).
{{- end -}}
