{{/* Names ---------------------------------------------------------------------------------- */}}

{{- define "gridts.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-gridts", or "<release>" when the release name already contains the chart name. */}}
{{- define "gridts.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>", for component resources. Call with (list $ "component"). */}}
{{- define "gridts.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "gridts.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gridts.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels ----------------------------------------------------------------------------------- */}}

{{/* Selector labels of one component. Call with (list $ "component"). Never change these:
     Deployment and StatefulSet selectors are immutable. */}}
{{- define "gridts.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "gridts.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* All labels of one component's objects. Call with (list $ "component"). */}}
{{- define "gridts.labels" -}}
{{- $root := index . 0 -}}
helm.sh/chart: {{ include "gridts.chart" $root }}
{{ include "gridts.selectorLabels" . }}
app.kubernetes.io/part-of: gridts
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service }}
{{- end -}}

{{/* Images ----------------------------------------------------------------------------------- */}}

{{- define "gridts.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- define "gridts.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* InfluxDB connection -------------------------------------------------------------------- */}}

{{- define "gridts.influxdb.serviceName" -}}
{{- include "gridts.componentName" (list . "influxdb") -}}
{{- end -}}

{{- define "gridts.influxdb.url" -}}
{{- if .Values.influxdb.enabled -}}
{{- /* Namespace-relative on purpose: the kustomize base is rendered from this chart. */ -}}
{{- printf "http://%s:8086" (include "gridts.influxdb.serviceName" .) -}}
{{- else -}}
{{- required "externalInfluxdb.url is required when influxdb.enabled=false" .Values.externalInfluxdb.url -}}
{{- end -}}
{{- end -}}

{{/* Where the tokens Job reaches InfluxDB: the release's own pod through the headless Service,
     which publishes it before it is ready (it becomes ready only once the Job has onboarded it,
     and the Service routes only to ready pods), or the external URL. */}}
{{- define "gridts.influxdb.setupUrl" -}}
{{- if .Values.influxdb.enabled -}}
{{- printf "http://%s-0.%s:8086" (include "gridts.componentName" (list . "influxdb")) (include "gridts.componentName" (list . "influxdb-headless")) -}}
{{- else -}}
{{- include "gridts.influxdb.url" . -}}
{{- end -}}
{{- end -}}

{{/* Whether the tokens Job onboards an un-onboarded InfluxDB: always the release's own, an
     external one only when asked to. */}}
{{- define "gridts.influxdb.onboard" -}}
{{- if or .Values.influxdb.enabled .Values.externalInfluxdb.onboard -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* The Secret with the admin token: ours, the operator's, or the external one. */}}
{{- define "gridts.influxdb.adminSecretName" -}}
{{- if .Values.influxdb.enabled -}}
{{- default (include "gridts.componentName" (list . "influxdb-admin")) .Values.influxdb.admin.existingSecret -}}
{{- else -}}
{{- .Values.externalInfluxdb.adminTokenSecret.name -}}
{{- end -}}
{{- end -}}

{{- define "gridts.influxdb.adminSecretKey" -}}
{{- if .Values.influxdb.enabled -}}admin-token{{- else -}}{{ .Values.externalInfluxdb.adminTokenSecret.key }}{{- end -}}
{{- end -}}

{{- define "gridts.apiTokenSecretName" -}}
{{- default (include "gridts.componentName" (list . "api-influx-token")) .Values.tokens.api.existingSecret -}}
{{- end -}}

{{- define "gridts.ingestTokenSecretName" -}}
{{- default (include "gridts.componentName" (list . "ingest-influx-token")) .Values.tokens.ingest.existingSecret -}}
{{- end -}}

{{/* True (non-empty) when the tokens Job makes at least one token (and so needs its Role). */}}
{{- define "gridts.tokensJob.makesTokens" -}}
{{- if and .Values.tokens.job.enabled (or (not .Values.tokens.api.existingSecret) (not .Values.tokens.ingest.existingSecret)) -}}true{{- end -}}
{{- end -}}

{{/* True (non-empty) when the tokens Job has something to do: tokens, or onboarding. */}}
{{- define "gridts.tokensJob.needed" -}}
{{- if or (include "gridts.tokensJob.makesTokens" .) (and .Values.tokens.job.enabled (eq (include "gridts.influxdb.onboard" .) "true")) -}}true{{- end -}}
{{- end -}}

{{- define "gridts.apiAuthSecretName" -}}
{{- default (include "gridts.componentName" (list . "api-auth")) .Values.api.auth.existingSecret -}}
{{- end -}}

{{/* Settings that cannot work together fail the render with a message. */}}
{{- define "gridts.validate" -}}
{{- $tiers := list -}}
{{- range splitList "," .Values.tiers.list -}}{{- if trim . -}}{{- $tiers = append $tiers (trim .) -}}{{- end -}}{{- end -}}
{{- range $tier, $_ := .Values.tiers.retention -}}
{{- if not (has $tier $tiers) -}}
{{- fail (printf "tiers.retention names %s, which is not in tiers.list (%q)" $tier $.Values.tiers.list) -}}
{{- end -}}
{{- end -}}
{{- if not .Values.influxdb.enabled -}}
{{- if not .Values.externalInfluxdb.url -}}
{{- fail "influxdb.enabled=false needs externalInfluxdb.url" -}}
{{- end -}}
{{- $supplied := and .Values.tokens.api.existingSecret .Values.tokens.ingest.existingSecret -}}
{{- if and (not $supplied) (not (and .Values.tokens.job.enabled .Values.externalInfluxdb.adminTokenSecret.name)) -}}
{{- fail "with an external InfluxDB, set tokens.api.existingSecret and tokens.ingest.existingSecret, or externalInfluxdb.adminTokenSecret.name (and tokens.job.enabled) so the chart creates them" -}}
{{- end -}}
{{- if and .Values.externalInfluxdb.onboard (not (and .Values.tokens.job.enabled .Values.externalInfluxdb.adminTokenSecret.name)) -}}
{{- fail "externalInfluxdb.onboard=true needs the tokens Job (tokens.job.enabled) and externalInfluxdb.adminTokenSecret.name (its admin-token and admin-password)" -}}
{{- end -}}
{{- else if not .Values.tokens.job.enabled -}}
{{- fail "tokens.job.enabled=false: nothing would onboard the release's InfluxDB. The tokens Job onboards it on first start, and makes no token when tokens.api.existingSecret and tokens.ingest.existingSecret are both set" -}}
{{- end -}}
{{- $inline := 0 -}}
{{- range $name, $content := .Values.ingest.inlineFiles -}}
{{- $inline = add $inline (len $content) -}}
{{- end -}}
{{- if gt (int $inline) 262144 -}}
{{- fail (printf "ingest.inlineFiles holds %d bytes; at most 262144 (256 KiB) in all fit: Helm keeps the values and the rendered ConfigMap in its release Secret (gzip, base64, at most 1 MiB), and an upgrade would fail with 'data: Too long'. Put bigger files on a PersistentVolumeClaim (ingest.data.existingClaim, mounted at /srv/ingest/data) or behind a URL" (int $inline)) -}}
{{- end -}}
{{- if and .Values.ingest.indexed.enabled (lt (int .Values.ingest.indexed.completions) 1) -}}
{{- fail "ingest.indexed.completions must be at least 1" -}}
{{- end -}}
{{- end -}}

{{/* Container security context of every gridts-image container (containerSecurityContext:
     hardened by default; keys set to null are gone from the values by now). */}}
{{- define "gridts.containerSecurityContext" -}}
{{- toYaml (.Values.containerSecurityContext | default dict) -}}
{{- end -}}

{{/* Pod security context of gridts-image pods (podSecurityContext: the image's numeric
     non-root user by default). */}}
{{- define "gridts.podSecurityContext" -}}
{{- toYaml (.Values.podSecurityContext | default dict) -}}
{{- end -}}

{{/* Pod labels: the component's labels, then the user's podLabels, which may not replace one
     of the chart's (selectors, NetworkPolicies and `ops submit` rely on them).
     Call with (list $ "component" podLabels "where.podLabels"). */}}
{{- define "gridts.podLabels" -}}
{{- $root := index . 0 -}}
{{- $extra := index . 2 | default dict -}}
{{- $where := index . 3 -}}
{{- $own := include "gridts.labels" (list $root (index . 1)) -}}
{{- $ownKeys := fromYaml $own -}}
{{- range $key, $_ := $extra -}}
{{- if hasKey $ownKeys $key -}}
{{- fail (printf "%s: %q is a label the chart sets itself (selectors and NetworkPolicies match on it); choose another key" $where $key) -}}
{{- end -}}
{{- end -}}
{{- $own -}}
{{- with $extra }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{/* Pod annotations: the chart's (a dict) and the user's podAnnotations, which win.
     Renders the whole `annotations:` key, or nothing. Call with (list chartDict podAnnotations). */}}
{{- define "gridts.podAnnotations" -}}
{{- with merge (dict) (index . 1 | default dict) (index . 0) -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* A container's env: the chart's own variables (YAML list text), then the user's extraEnv.
     A name the chart sets, a reserved one or one given twice fails the render: Kubernetes would
     keep only the last, and server-side apply refuses duplicates.
     Call with (dict "own" text "extra" list "where" "api.extraEnv" "reserved" list
     "hints" dict-of-name-to-value-path). */}}
{{- define "gridts.env" -}}
{{- $where := .where -}}
{{- $hints := .hints | default dict -}}
{{- $seen := dict -}}
{{- range (fromYamlArray .own) -}}
{{- $_ := set $seen .name "the chart" -}}
{{- end -}}
{{- range (.reserved | default list) -}}
{{- $_ := set $seen . "the chart" -}}
{{- end -}}
{{- range (.extra | default list) -}}
{{- if hasKey $seen .name -}}
{{- if eq (get $seen .name) "the chart" -}}
{{- fail (printf "%s: %s is set by the chart itself%s" $where .name (ternary (printf " (from %s)" (get $hints .name)) "" (hasKey $hints .name))) -}}
{{- else -}}
{{- fail (printf "%s: %s is given twice" $where .name) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $seen .name "extraEnv" -}}
{{- end -}}
{{- .own -}}
{{- with .extra }}
{{ toYaml . }}
{{- end -}}
{{- end -}}

{{/* The environment every gridts container gets to find InfluxDB (token excluded). */}}
{{- define "gridts.influxEnv" -}}
- name: INFLUX_URL
  value: {{ include "gridts.influxdb.url" . | quote }}
- name: INFLUX_ORG
  value: {{ .Values.influx.org | quote }}
- name: INFLUX_BUCKET
  value: {{ .Values.influx.bucket | quote }}
{{- end -}}

{{/* The Secret key that names what a token made by the tokens Job may do: "scope-" and a hash of
     its action, the bucket and the tiers. The Job stores it next to the token, and the API and
     ingest pods refer to it (INFLUX_TOKEN_SCOPE), so a pod made for a new scope (tiers changed,
     or an upgrade from a version whose tokens covered the raw bucket only) starts only once the
     Secret holds a token made for it. `python -m ops submit` copies the CronJob's.
     Call with (list . "read"|"read-write"). */}}
{{- define "gridts.tokenScopeKey" -}}
{{- $root := index . 0 -}}
{{- printf "scope-%s" (printf "%s %s %s" (index . 1) $root.Values.influx.bucket $root.Values.tiers.list | sha256sum | trunc 16) -}}
{{- end -}}

{{/* INFLUX_TOKEN_SCOPE of a container whose token the tokens Job makes (nothing for a supplied
     token Secret). Call with (list . "api"|"ingest"). */}}
{{- define "gridts.tokenScopeEnv" -}}
{{- $root := index . 0 -}}
{{- $who := index . 1 -}}
{{- $supplied := get (get $root.Values.tokens $who) "existingSecret" -}}
{{- if and (not $supplied) (include "gridts.tokensJob.makesTokens" $root) }}
- name: INFLUX_TOKEN_SCOPE
  valueFrom:
    secretKeyRef:
      name: {{ ternary (include "gridts.apiTokenSecretName" $root) (include "gridts.ingestTokenSecretName" $root) (eq $who "api") }}
      key: {{ include "gridts.tokenScopeKey" (list $root (ternary "read" "read-write" (eq $who "api"))) }}
{{- end }}
{{- end -}}

{{/* The tier retention as the tokens Job reads it (TIER_RETENTION): "15m=104w,1m=90d". */}}
{{- define "gridts.tierRetention" -}}
{{- $parts := list -}}
{{- range $tier, $keep := .Values.tiers.retention -}}
{{- $parts = append $parts (printf "%s=%s" $tier $keep) -}}
{{- end -}}
{{- join "," $parts -}}
{{- end -}}

{{/* The API container's own env: where it listens, InfluxDB, its read-only token, bearer
     tokens, and its limits (api.settings). Integers through int64: values files give float64,
     which would print 1000000 as 1e+06. */}}
{{- define "gridts.api.env" -}}
{{- $v := .Values.api -}}
{{- $s := $v.settings -}}
- name: API_PORT
  value: {{ $v.port | quote }}
- name: LOG_LEVEL
  value: {{ $v.logLevel | quote }}
{{ include "gridts.influxEnv" . }}
- name: INFLUX_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "gridts.apiTokenSecretName" . }}
      key: {{ .Values.tokens.api.key }}
{{- include "gridts.tokenScopeEnv" (list . "api") }}
- name: API_TIERS
  value: {{ ternary .Values.tiers.list "" .Values.tiers.answerQueries | quote }}
{{- if $v.auth.enabled }}
- name: API_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "gridts.apiAuthSecretName" . }}
      key: tokens
{{- end }}
- name: API_QUERY_TIMEOUT_SECONDS
  value: {{ toString $s.queryTimeoutSeconds | quote }}
- name: API_MAX_POINTS
  value: {{ int64 $s.maxPoints | quote }}
- name: API_MAX_SCAN_POINTS
  value: {{ int64 $s.maxScanPoints | quote }}
- name: API_CONCURRENT_REQUESTS
  value: {{ int64 $s.concurrentRequests | quote }}
- name: API_INFLUXQL_READS
  value: {{ ternary "true" "false" $s.influxqlReads | quote }}
- name: API_HEAVY_QUERIES
  value: {{ int64 $s.heavyQueries | quote }}
- name: API_HEAVY_WAIT_SECONDS
  value: {{ toString $s.heavyWaitSeconds | quote }}
- name: API_CATALOG_TTL_SECONDS
  value: {{ toString $s.catalogTtlSeconds | quote }}
- name: API_PENDING_REFRESH_SECONDS
  value: {{ toString $s.pendingRefreshSeconds | quote }}
{{- end -}}

{{/* Which value sets each variable the chart gives the API or the ingest (for the message when
     extraEnv repeats one). Call with "api" or "ingest". */}}
{{- define "gridts.envHints" -}}
INFLUX_URL: influxdb.enabled or externalInfluxdb.url
INFLUX_ORG: influx.org
INFLUX_BUCKET: influx.bucket
INFLUX_TOKEN: tokens.{{ . }}.existingSecret
INFLUX_TOKEN_SCOPE: the tokens Job (the scope of the token it makes)
{{- if eq . "api" }}
API_PORT: api.port
LOG_LEVEL: api.logLevel
API_TOKENS: api.auth.enabled and api.auth.existingSecret
API_QUERY_TIMEOUT_SECONDS: api.settings.queryTimeoutSeconds
API_MAX_POINTS: api.settings.maxPoints
API_MAX_SCAN_POINTS: api.settings.maxScanPoints
API_CONCURRENT_REQUESTS: api.settings.concurrentRequests
API_INFLUXQL_READS: api.settings.influxqlReads
API_HEAVY_QUERIES: api.settings.heavyQueries
API_HEAVY_WAIT_SECONDS: api.settings.heavyWaitSeconds
API_CATALOG_TTL_SECONDS: api.settings.catalogTtlSeconds
API_PENDING_REFRESH_SECONDS: api.settings.pendingRefreshSeconds
API_TIERS: tiers.list and tiers.answerQueries
{{- else }}
JOB_INDEX: ingest.indexed.enabled, which binds it to the completion index
INGEST_TIERS: tiers.list
{{- end }}
{{- end -}}

{{/* The ingest container's own env: InfluxDB, its write-only token, the completion index. */}}
{{- define "gridts.ingest.env" -}}
{{ include "gridts.influxEnv" . }}
- name: INFLUX_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "gridts.ingestTokenSecretName" . }}
      key: {{ .Values.tokens.ingest.key }}
{{- include "gridts.tokenScopeEnv" (list . "ingest") }}
- name: INGEST_TIERS
  value: {{ .Values.tiers.list | quote }}
{{- if .Values.ingest.indexed.enabled }}
- name: JOB_INDEX
  valueFrom:
    fieldRef:
      fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
{{- end }}
{{- end -}}

{{/* The ingest Job spec: the CronJob's jobTemplate, which `ops submit` copies. */}}
{{- define "gridts.ingest.jobSpec" -}}
{{- $v := .Values.ingest -}}
backoffLimit: {{ $v.backoffLimit }}
activeDeadlineSeconds: {{ $v.activeDeadlineSeconds }}
ttlSecondsAfterFinished: {{ $v.ttlSecondsAfterFinished }}
{{- if $v.indexed.enabled }}
completionMode: Indexed
completions: {{ $v.indexed.completions }}
parallelism: {{ $v.indexed.parallelism }}
{{- end }}
podFailurePolicy:
  rules:
    # Exit code 2 is bad input or usage: retrying cannot help.
    - action: FailJob
      onExitCodes:
        containerName: ingest
        operator: In
        values: [2]
    # Evictions and node drains are not the ingest's fault.
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
template:
  metadata:
    labels:
      {{- include "gridts.podLabels" (list . "ingest" $v.podLabels "ingest.podLabels") | nindent 6 }}
    {{- with include "gridts.podAnnotations" (list (dict) $v.podAnnotations) }}
    {{- . | nindent 4 }}
    {{- end }}
  spec:
    serviceAccountName: {{ include "gridts.componentName" (list . "ingest") }}
    automountServiceAccountToken: false
    restartPolicy: Never
    {{- include "gridts.imagePullSecrets" . | nindent 4 }}
    securityContext:
      {{- include "gridts.podSecurityContext" . | nindent 6 }}
    {{- with $v.nodeSelector }}
    nodeSelector:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with $v.tolerations }}
    tolerations:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    containers:
      - name: ingest
        image: {{ include "gridts.image" . | quote }}
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        args:
          - ingest
          - load
          {{- range $v.sources }}
          - {{ . | quote }}
          {{- end }}
          {{- with $v.series }}
          - --series
          - {{ . | quote }}
          {{- end }}
          {{- range $v.extraArgs }}
          - {{ . | quote }}
          {{- end }}
        env:
          {{- include "gridts.env" (dict "own" (include "gridts.ingest.env" .) "extra" $v.extraEnv "where" "ingest.extraEnv" "reserved" (list "JOB_INDEX") "hints" (include "gridts.envHints" "ingest" | fromYaml)) | nindent 10 }}
        resources:
          {{- toYaml $v.resources | nindent 10 }}
        securityContext:
          {{- include "gridts.containerSecurityContext" . | nindent 10 }}
        volumeMounts:
          - name: tmp
            mountPath: /tmp
          {{- if $v.data.existingClaim }}
          - name: data
            mountPath: /srv/ingest/data
            readOnly: true
          {{- end }}
          {{- if $v.inlineFiles }}
          - name: files
            mountPath: /srv/ingest/files
            readOnly: true
          {{- end }}
    volumes:
      - name: tmp
        emptyDir:
          sizeLimit: 1Gi
      {{- if $v.data.existingClaim }}
      - name: data
        persistentVolumeClaim:
          claimName: {{ $v.data.existingClaim }}
          readOnly: true
      {{- end }}
      {{- if $v.inlineFiles }}
      - name: files
        configMap:
          name: {{ include "gridts.componentName" (list . "ingest-files") }}
      {{- end }}
{{- end -}}

{{/* Gateway ---------------------------------------------------------------------------------- */}}

{{/* Where the gateway's ConfigMap is mounted (haproxy.cfg and the error pages it names). */}}
{{- define "gridts.gateway.configDir" -}}/usr/local/etc/haproxy{{- end -}}

{{/* The gateway's image. */}}
{{- define "gridts.gateway.image" -}}
{{- printf "%s:%s" .Values.gateway.image.repository .Values.gateway.image.tag -}}
{{- end -}}

{{/* Requests each gateway sends one API pod at once: an equal share of the pod's turns
     (api.settings.concurrentRequests), at least one; 0 when the API sets no limit. */}}
{{- define "gridts.gateway.maxconn" -}}
{{- $turns := int .Values.api.settings.concurrentRequests -}}
{{- if eq $turns 0 -}}0{{- else -}}{{ max 1 (div $turns (int .Values.gateway.replicas)) }}{{- end -}}
{{- end -}}

{{/* Milliseconds a request may wait in a gateway's queue (gateway.queueSeconds, else the
     API's query timeout). */}}
{{- define "gridts.gateway.queueMs" -}}
{{- $own := float64 .Values.gateway.queueSeconds -}}
{{- $seconds := ternary $own (float64 .Values.api.settings.queryTimeoutSeconds) (gt $own 0.0) -}}
{{- mulf $seconds 1000 | ceil | int64 -}}
{{- end -}}

{{/* Milliseconds a gateway may hold a request: its wait in the queue, then its query. A
     stopping gateway finishes those it holds within this (hard-stop-after, the pod's grace). */}}
{{- define "gridts.gateway.holdMs" -}}
{{- add (include "gridts.gateway.queueMs" . | int64) (mulf .Values.api.settings.queryTimeoutSeconds 1000 | ceil | int64) -}}
{{- end -}}
