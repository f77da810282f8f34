#!/bin/sh
# Posts the dataops environment summary as a note on the pipeline's merge request, or updates
# the note it posted before (the one carrying the marker below), so an MR has one such note.
#
#   sh ci/gitlab/post-summary.sh [SUMMARY_FILE]      (default: dataops-summary.md)
#
# Needs curl and node (the node:20 image has both) and, in merge-request pipelines, GitLab's
# CI_API_V4_URL, CI_PROJECT_ID and CI_MERGE_REQUEST_IID, plus DATAOPS_GITLAB_TOKEN: a project
# access token with the api scope (a masked CI/CD variable). The token is passed to curl through
# a private file, never on a command line, and never printed.
# Exit: 0 posted, or nothing to do (no summary, not an MR pipeline, no token: said on stderr);
# non-zero when the GitLab API refused or failed (curl says why).
set -eu

MARKER='<!-- dataops-summary -->'
file="${1:-dataops-summary.md}"

say() { printf 'post-summary: %s\n' "$*" >&2; }

if [ ! -s "$file" ]; then
    say "$file is missing or empty; nothing to post"
    exit 0
fi
if [ -z "${CI_MERGE_REQUEST_IID:-}" ]; then
    say "not a merge-request pipeline (CI_MERGE_REQUEST_IID is unset); the summary stays in $file"
    exit 0
fi
if [ -z "${DATAOPS_GITLAB_TOKEN:-}" ]; then
    say "DATAOPS_GITLAB_TOKEN is not set: define it (a project access token, scope api) to get the summary on the merge request"
    exit 0
fi
: "${CI_API_V4_URL:?is not set (GitLab sets it in CI)}"
: "${CI_PROJECT_ID:?is not set (GitLab sets it in CI)}"

notes="$CI_API_V4_URL/projects/$CI_PROJECT_ID/merge_requests/$CI_MERGE_REQUEST_IID/notes"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' INT TERM

umask 077
printf 'PRIVATE-TOKEN: %s\n' "$DATAOPS_GITLAB_TOKEN" > "$tmp/auth"

api() { # METHOD URL [JSON_BODY_FILE] > response
    if [ $# -ge 3 ]; then
        curl --silent --show-error --fail --retry 3 --header "@$tmp/auth" \
            --header 'Content-Type: application/json' --request "$1" --data-binary "@$3" "$2"
    else
        curl --silent --show-error --fail --retry 3 --header "@$tmp/auth" --request "$1" "$2"
    fi
}

# The note's body as JSON: the marker, then the summary. (The ${...} below is JavaScript.)
# shellcheck disable=SC2016
node -e '
const fs = require("fs");
const [marker, file] = process.argv.slice(1);
const summary = fs.readFileSync(file, "utf8");
const body = summary.includes(marker) ? summary : `${marker}\n${summary}`;
process.stdout.write(JSON.stringify({ body }));
' "$MARKER" "$file" > "$tmp/body.json"

# Find our earlier note, page by page (oldest first).
note_id=""
page=1
while [ "$page" -le 50 ]; do
    api GET "$notes?per_page=100&page=$page&sort=asc&order_by=created_at" > "$tmp/page.json"
    # Prints the id of the first non-system note carrying the marker, "more" for a full page
    # without one, or nothing for the last page.
    found="$(node -e '
const fs = require("fs");
const [marker, file] = process.argv.slice(1);
const notes = JSON.parse(fs.readFileSync(file, "utf8"));
if (!Array.isArray(notes)) throw new Error("unexpected answer from the notes API");
const note = notes.find((n) => !n.system && typeof n.body === "string" && n.body.includes(marker));
process.stdout.write(note ? String(note.id) : notes.length >= 100 ? "more" : "");
' "$MARKER" "$tmp/page.json")"
    case "$found" in
        more) page=$((page + 1)) ;;
        *) note_id="$found"; break ;;
    esac
done

if [ -n "$note_id" ]; then
    api PUT "$notes/$note_id" "$tmp/body.json" > /dev/null
    say "updated note $note_id on merge request !$CI_MERGE_REQUEST_IID"
else
    api POST "$notes" "$tmp/body.json" > /dev/null
    say "posted the summary on merge request !$CI_MERGE_REQUEST_IID"
fi
