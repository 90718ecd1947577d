{{/*
_helpers.tpl - names, labels, images and the checks that need more than
values.schema.json (references between values).
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "terrane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of resource names: fullnameOverride, else the release name when it
already contains the chart name ("terrane"), else <release>-<chart>. Kept to
40 characters so suffixes such as "-controller-leader-election" still fit.
*/}}
{{- define "terrane.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "terrane.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "terrane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every resource (Kubernetes recommended labels). */}}
{{- define "terrane.labels" -}}
helm.sh/chart: {{ include "terrane.chart" . }}
{{ include "terrane.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: terrane
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels selecting this release's objects; immutable in a Deployment's selector. */}}
{{- define "terrane.selectorLabels" -}}
app.kubernetes.io/name: {{ include "terrane.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Selector labels of the controller pods. */}}
{{- define "terrane.controllerSelectorLabels" -}}
{{ include "terrane.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "terrane.controllerServiceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{- default (printf "%s-controller" (include "terrane.fullname" .)) .Values.controller.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.controller.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "terrane.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.leaseNamespace -}}
{{- end -}}

{{/* Namespaces that get the worker ServiceAccount and NetworkPolicy, as a JSON list. */}}
{{- define "terrane.workerNamespaces" -}}
{{- if .Values.worker.namespaces -}}
{{- toJson .Values.worker.namespaces -}}
{{- else -}}
{{- list (default .Release.Namespace .Values.controller.watchNamespace) | toJson -}}
{{- end -}}
{{- end -}}

{{/* The Pod Security Admission labels of worker namespaces, one per line as key: value. */}}
{{- define "terrane.podSecurityLabels" -}}
{{- $ps := .Values.worker.podSecurity -}}
{{- range $mode := list "enforce" "warn" "audit" }}
pod-security.kubernetes.io/{{ $mode }}: {{ $ps.level }}
pod-security.kubernetes.io/{{ $mode }}-version: {{ $ps.version }}
{{- end }}
{{- end -}}

{{/* image: (dict "registry" R "image" .Values.x.image "default" TAG) -> registry/repository:tag or @digest */}}
{{- define "terrane.image" -}}
{{- $repo := .image.repository -}}
{{- if .registry -}}{{- $repo = printf "%s/%s" (trimSuffix "/" .registry) $repo -}}{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .default .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "terrane.controllerImage" -}}
{{- include "terrane.image" (dict "registry" .Values.imageRegistry "image" .Values.controller.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{- define "terrane.workerImage" -}}
{{- include "terrane.image" (dict "registry" .Values.imageRegistry "image" .Values.worker.image "default" .Chart.AppVersion) -}}
{{- end -}}

{{/* The pools configuration the controller loads with --pools (controller/pools.h). */}}
{{- define "terrane.poolsJson" -}}
{{- $pools := dict -}}
{{- range $name, $p := .Values.pools -}}
{{- $out := dict "nodeSelector" ($p.nodeSelector | default dict) "tolerations" ($p.tolerations | default list) -}}
{{- $res := dict -}}
{{- with $p.resources -}}
{{- with .requests -}}{{- $_ := set $res "requests" (include "terrane.quantities" . | fromJson) -}}{{- end -}}
{{- with .limits -}}{{- $_ := set $res "limits" (include "terrane.quantities" . | fromJson) -}}{{- end -}}
{{- end -}}
{{- if $res -}}{{- $_ := set $out "resources" $res -}}{{- end -}}
{{- if $p.oomEscalation -}}{{- $_ := set $out "oomEscalation" $p.oomEscalation -}}{{- end -}}
{{- if $p.maxPartitionPods -}}{{- $_ := set $out "maxPartitionPods" (int64 $p.maxPartitionPods) -}}{{- end -}}
{{- $_ := set $pools $name $out -}}
{{- end -}}
{{- dict "defaultPool" .Values.defaultPool "pools" $pools | toPrettyJson -}}
{{- end -}}

{{/* A resource list with every quantity as a string (YAML numbers become "2", not 2.0). */}}
{{- define "terrane.quantities" -}}
{{- $out := dict -}}
{{- range $k, $v := . -}}
{{- if kindIs "string" $v -}}
{{- $_ := set $out $k $v -}}
{{- else if and (kindIs "float64" $v) (eq (float64 (int64 $v)) $v) -}}
{{- $_ := set $out $k (toString (int64 $v)) -}}
{{- else -}}
{{- $_ := set $out $k (toString $v) -}}
{{- end -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The worker environment the controller passes with --worker-env. */}}
{{- define "terrane.workerEnvJson" -}}
{{- $w := .Values.worker -}}
{{- $env := dict "TERRANE_LOG_LEVEL" $w.env.logLevel -}}
{{- $_ := set $env "TERRANE_ALLOWED_BUCKETS" (join "," ($w.env.allowedBuckets | default (list "*"))) -}}
{{- with $w.env.allowedHosts -}}{{- $_ := set $env "TERRANE_ALLOWED_HOSTS" (join "," .) -}}{{- end -}}
{{- with $w.s3.region -}}{{- $_ := set $env "AWS_REGION" . -}}{{- end -}}
{{- with $w.s3.endpoint -}}{{- $_ := set $env "AWS_S3_ENDPOINT" . -}}{{- end -}}
{{- $_ := set $env "AWS_HTTPS" (ternary "YES" "NO" $w.s3.https) -}}
{{- $_ := set $env "AWS_VIRTUAL_HOSTING" (ternary "TRUE" "FALSE" $w.s3.virtualHosting) -}}
{{- range $k, $v := $w.env.extra -}}
{{- if eq $k "TERRANE_TASK" -}}
{{- fail "worker.env.extra.TERRANE_TASK: the controller sets it for each worker pod" -}}
{{- end -}}
{{- if hasKey $env $k -}}
{{- fail (printf "worker.env.extra.%s: set by the chart from other values; use those instead" $k) -}}
{{- end -}}
{{- $_ := set $env $k (toString $v) -}}
{{- end -}}
{{- toPrettyJson $env -}}
{{- end -}}

{{/*
Checks across values that values.schema.json cannot express. Each failure
names the value to change.
*/}}
{{- define "terrane.validate" -}}
{{- $v := .Values -}}
{{- if and (gt (int $v.controller.replicas) 1) (not $v.leaderElection.enabled) -}}
{{- fail (printf "controller.replicas is %d but leaderElection.enabled is false: two active controllers would reconcile the same assets; enable leader election or use one replica" (int $v.controller.replicas)) -}}
{{- end -}}
{{- if not (hasKey $v.pools $v.defaultPool) -}}
{{- fail (printf "defaultPool: %q is not one of pools (%s)" $v.defaultPool (keys $v.pools | sortAlpha | join ", ")) -}}
{{- end -}}
{{- range $name, $p := $v.pools -}}
{{- if $p.oomEscalation -}}
{{- if not (hasKey $v.pools $p.oomEscalation) -}}
{{- fail (printf "pools.%s.oomEscalation: %q is not one of pools (%s)" $name $p.oomEscalation (keys $v.pools | sortAlpha | join ", ")) -}}
{{- end -}}
{{- if eq $p.oomEscalation $name -}}
{{- fail (printf "pools.%s.oomEscalation: a pool cannot escalate to itself" $name) -}}
{{- end -}}
{{- end -}}
{{- $req := ($p.resources | default dict).requests | default dict -}}
{{- $lim := ($p.resources | default dict).limits | default dict -}}
{{- range $r, $q := $req -}}
{{- if and (contains "/" $r) (not (hasPrefix "kubernetes.io/" $r)) -}}
{{- if not (hasKey $lim $r) -}}
{{- fail (printf "pools.%s.resources.requests.%s: an extended resource needs a limit too (Kubernetes requires requests == limits for it)" $name $r) -}}
{{- else if ne (toString $q) (toString (get $lim $r)) -}}
{{- fail (printf "pools.%s.resources: requests.%s (%v) must equal limits.%s (%v) for an extended resource" $name $r $q $r (get $lim $r)) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- /* escalation chains end: follow each for at most len(pools) steps */ -}}
{{- range $name, $_ := $v.pools -}}
{{- $cur := $name -}}
{{- $trail := list $name -}}
{{- range until (len $v.pools) -}}
{{- if $cur -}}
{{- $next := (get $v.pools $cur).oomEscalation | default "" -}}
{{- if and $next (has $next $trail) -}}
{{- fail (printf "pools.%s.oomEscalation: escalation cycle %s -> %s" $name (join " -> " $trail) $next) -}}
{{- end -}}
{{- $trail = append $trail $next -}}
{{- $cur = $next -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled (not $v.metrics.service.enabled) -}}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled (the ServiceMonitor selects the metrics Service)" -}}
{{- end -}}
{{- if ge (int $v.leaderElection.renewDeadlineSeconds) (int $v.leaderElection.leaseDurationSeconds) -}}
{{- fail "leaderElection.renewDeadlineSeconds must be less than leaderElection.leaseDurationSeconds" -}}
{{- end -}}
{{- if ge (int $v.leaderElection.retryPeriodSeconds) (int $v.leaderElection.renewDeadlineSeconds) -}}
{{- fail "leaderElection.retryPeriodSeconds must be less than leaderElection.renewDeadlineSeconds" -}}
{{- end -}}
{{- if and $v.controller.watchNamespace $v.worker.namespaces -}}
{{- range $v.worker.namespaces -}}
{{- if ne . $v.controller.watchNamespace -}}
{{- fail (printf "worker.namespaces: %q is not controller.watchNamespace (%s); the controller only runs workers there" . $v.controller.watchNamespace) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
