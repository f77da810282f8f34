#!/bin/sh
# After `dataops up` in CI: build the project's dbt models in the merge request's own
# environment and add the result to the summary that is posted on the merge request.
#
#   sh ci/dbt-build.sh SUMMARY_FILE
#
# Connection: `dataops dbt` runs the pinned dbt with the variables `dataops env --user NAME`
# prints (the transformer's user by default; DATAOPS_DBT_USER to choose another).
# Slim CI: when DATAOPS_DBT_STATE names a folder holding production's manifest.json, only
# the models this change touches (and what depends on them) are built, and everything else
# is read from production's relations (dbt's --defer --state).
# Exit status: dbt's (0 passed, 1 failed); 0 with a note when the project has no dbt/ folder.
set -u
summary="${1:?usage: sh ci/dbt-build.sh SUMMARY_FILE}"
log=dbt-build.log

if [ ! -f dbt/dbt_project.yml ]; then
  echo "dbt: no dbt/dbt_project.yml in this project; nothing to build"
  exit 0
fi

# dbt comes from PyPI into a venv; Debian images ship python3 without its venv module.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  echo "dbt: installing python3-venv (Debian's python3 lacks it)"
  (apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null) || echo "dbt: could not install python3-venv; dataops dbt will say what is missing"
fi

set -- build
if [ -n "${DATAOPS_DBT_STATE:-}" ] && [ -f "${DATAOPS_DBT_STATE}/manifest.json" ]; then
  set -- build --select state:modified+ --defer --state "$DATAOPS_DBT_STATE"
  mode="slim CI: models changed against production's manifest, the rest deferred to production"
else
  mode="every model"
fi
user_args=""
[ -n "${DATAOPS_DBT_USER:-}" ] && user_args="--user $DATAOPS_DBT_USER"

status=0
# shellcheck disable=SC2086 # user_args is one option and one plain name, or nothing
npx dataops dbt $user_args "$@" > "$log" 2>&1 || status=$?
cat "$log"

result=$(grep -E 'Done\. PASS=' "$log" | tail -n 1 | sed 's/.*\(Done\.\)/\1/')
{
  echo ""
  echo "#### dbt build ($mode)"
  echo ""
  if [ "$status" -eq 0 ]; then
    echo "Passed. ${result:-}"
  else
    echo "**Failed** (exit $status). ${result:-} The last lines:"
    echo ""
    echo '```'
    tail -n 25 "$log"
    echo '```'
    echo ""
    echo "Run it yourself: \`npx dataops dbt --branch <this branch> build\`, or with your own dbt after \`eval \"\$(npx dataops env --user NAME --format shell)\"\`."
  fi
} >> "$summary"
exit "$status"
