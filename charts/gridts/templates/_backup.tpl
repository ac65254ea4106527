{{/* Backup and restore (backup.*) ------------------------------------------------------------- */}}

{{- define "gridts.backup.claimName" -}}
{{- default (include "gridts.componentName" (list . "backup")) .Values.backup.persistence.existingClaim -}}
{{- end -}}

{{/* The Secret and key of the operator token that backup and restore use: backup.token, else
     the admin Secret of the release's InfluxDB or the external one's adminTokenSecret. */}}
{{- define "gridts.backup.tokenSecretName" -}}
{{- default (include "gridts.influxdb.adminSecretName" .) .Values.backup.token.existingSecret -}}
{{- end -}}

{{- define "gridts.backup.tokenSecretKey" -}}
{{- if .Values.backup.token.existingSecret -}}{{ .Values.backup.token.key }}{{- else -}}{{ include "gridts.influxdb.adminSecretKey" . }}{{- end -}}
{{- end -}}

{{/* The token specs of the tokens Job (TOKEN_SPECS): the Secrets it makes. */}}
{{- define "gridts.tokenSpecs" -}}
{{- $specs := list }}
{{- if not .Values.tokens.api.existingSecret }}
{{- $specs = append $specs (dict "secret" (include "gridts.apiTokenSecretName" .) "key" .Values.tokens.api.key "action" "read" "purpose" "api (read-only)" "scope_key" (include "gridts.tokenScopeKey" (list . "read"))) }}
{{- end }}
{{- if not .Values.tokens.ingest.existingSecret }}
{{- $specs = append $specs (dict "secret" (include "gridts.ingestTokenSecretName" .) "key" .Values.tokens.ingest.key "action" "read-write" "purpose" "ingest (read and write)" "scope_key" (include "gridts.tokenScopeKey" (list . "read-write"))) }}
{{- end }}
{{- toJson $specs -}}
{{- end -}}

{{/* True (non-empty) when a full restore is followed by the tokens step (new API and ingest
     tokens in the restored InfluxDB). */}}
{{- define "gridts.restore.makesTokens" -}}
{{- if and (not .Values.backup.restore.bucket) (include "gridts.tokensJob.makesTokens" .) -}}true{{- end -}}
{{- end -}}

{{- define "gridts.backup.validate" -}}
{{- $b := .Values.backup -}}
{{- if not (include "gridts.backup.tokenSecretName" .) -}}
{{- fail "backup.enabled with an external InfluxDB needs its operator token: backup.token.existingSecret or externalInfluxdb.adminTokenSecret.name" -}}
{{- end -}}
{{- if and $b.restore.newBucket (not $b.restore.bucket) -}}
{{- fail "backup.restore.newBucket needs backup.restore.bucket (the bucket to restore under the new name)" -}}
{{- end -}}
{{- if and $b.bucket (not $b.restore.bucket) $b.restore.backup -}}
{{- fail "backup.bucket backs up one bucket's data only: a full restore (backup.restore.bucket empty) needs a full backup" -}}
{{- end -}}
{{- end -}}

{{/* The pod spec parts backup and restore pods share: security, scheduling, volumes. */}}
{{- define "gridts.backup.podCommon" -}}
{{- $v := .Values.backup -}}
{{- include "gridts.imagePullSecrets" . }}
securityContext:
  {{- include "gridts.podSecurityContext" . | nindent 2 }}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The tokens Job's tiers (TIERS, TIER_RETENTION): the buckets it makes and its tokens cover. */}}
{{- define "gridts.tokens.tierEnv" -}}
- name: TIERS
  value: {{ .Values.tiers.list | quote }}
- name: TIER_RETENTION
  value: {{ include "gridts.tierRetention" . | quote }}
{{- end -}}

{{/* The environment of `python -m ops`: where InfluxDB is and its operator token. */}}
{{- define "gridts.backup.env" -}}
- name: INFLUX_URL
  value: {{ include "gridts.influxdb.url" . | quote }}
- name: INFLUX_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "gridts.backup.tokenSecretName" . }}
      key: {{ include "gridts.backup.tokenSecretKey" . }}
{{- end -}}
