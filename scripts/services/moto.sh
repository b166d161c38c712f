#!/usr/bin/env bash
# S3 test server: moto (PyPI) in server mode on 127.0.0.1, in memory, with a
# bucket created at start.
#
#   scripts/services/moto.sh start|stop|status|env|install [STATE_DIR]
#
# Env: MOTO_PORT (19301), S3_BUCKET (hindsight-test), MOTO_STATE_DIR,
#      HINDSIGHT_TOOLS_DIR (where the venv lives, /var/tmp/hindsight-tools).
# MOTO_AUTH=1: authentication enforced. moto then lets only the first 3
#      requests through unsigned; they create an IAM user, its access key and an
#      allow-all policy, and that random key is what gets printed. Every later
#      request needs a valid SigV4 signature of that key (a wrong secret gets
#      SignatureDoesNotMatch, an unknown key InvalidAccessKeyId). Without it,
#      moto accepts any key and any signature.
# MOTO_TLS=1: HTTPS with a certificate moto generates (self-signed: a client
#      that verifies certificates refuses it).
# Prints S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET
# S3_FORCE_PATH_STYLE. Data is lost when the server stops.
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/lib.sh"
hs_init moto MOTO "$@"

PORT="${MOTO_PORT:-19301}"
BUCKET="${S3_BUCKET:-hindsight-test}"
AUTH="${MOTO_AUTH:-0}"
TLS="${MOTO_TLS:-0}"
VENV="$HINDSIGHT_TOOLS_DIR/venv-moto"

do_install() {
    # moto[s3] + flask is what moto_server needs for S3 (moto[server] pulls
    # twice as much); boto3 for the IAM bootstrap of MOTO_AUTH=1.
    hs_venv venv-moto 'moto.server, flask_cors, boto3' 'moto[s3]' flask flask-cors boto3 >/dev/null
}

do_start() {
    hs_require_free_port "$PORT"
    local noauth=inf scheme=http tls=()
    [ "$AUTH" != 1 ] || noauth=3
    if [ "$TLS" = 1 ]; then
        scheme=https
        tls=(--ssl)
    fi
    INITIAL_NO_AUTH_ACTION_COUNT="$noauth" hs_spawn "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT" "${tls[@]}"
    hs_wait_port "$PORT" 60
    # Prints "ACCESS_KEY SECRET_KEY" after creating the bucket.
    "$VENV/bin/python" - "$scheme://127.0.0.1:$PORT" "$BUCKET" "$AUTH" >"$STATE/keys" <<'PY' || hs_die "could not create the bucket (log: $LOGFILE)"
import json, ssl, sys, urllib.request
ep, bucket, auth = sys.argv[1:4]
if auth != "1":
    # moto checks no signature: an unsigned PUT creates the bucket (its own
    # certificate is self-signed: not verified here).
    ctx = ssl._create_unverified_context()
    urllib.request.urlopen(urllib.request.Request(f"{ep}/{bucket}", method="PUT"), timeout=30, context=ctx).read()
    print("testing testing")
    sys.exit(0)
import boto3
iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="hindsight-test")
key = iam.create_access_key(UserName="hindsight-test")["AccessKey"]
iam.put_user_policy(UserName="hindsight-test", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
boto3.client("s3", endpoint_url=ep, region_name="us-east-1", aws_access_key_id=key["AccessKeyId"],
             aws_secret_access_key=key["SecretAccessKey"]).create_bucket(Bucket=bucket)
print(key["AccessKeyId"], key["SecretAccessKey"])
PY
    local ak sk
    read -r ak sk <"$STATE/keys"
    hs_emit_env <<EOF
S3_ENDPOINT=$scheme://127.0.0.1:$PORT
S3_REGION=us-east-1
S3_ACCESS_KEY=$ak
S3_SECRET_KEY=$sk
S3_BUCKET=$BUCKET
S3_FORCE_PATH_STYLE=true
EOF
}

hs_main
