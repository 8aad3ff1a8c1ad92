#!/usr/bin/env bash
# Static checks of the collection: ansible-test sanity (from a copy under
# ansible_collections/bluemind/migration, as ansible-test requires) and ansible-doc for every module.
# usage: tests/sanity.sh            (uses .venv/bin; exits non-zero on any failure)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${VENV_BIN:-$top/.venv/bin}
python_version=${SANITY_PYTHON:-3.11}
work=${SANITY_WORKDIR:-$(mktemp -d /tmp/bluemind-sanity.XXXXXX)}
copy=$work/ansible_collections/bluemind/migration
mkdir -p "$copy"
# ansible-test reads git for the file list when .git exists; the copy has none (in a git worktree .git is a
# file, hence no trailing slash), so it sees all files.
rsync -a --delete --exclude=/.git --exclude=/.venv/ --exclude=/.cache/ --exclude=/.ansible/ --exclude=/reports/ --exclude=/lab/ --exclude=/bench/ \
  --exclude=.pytest_cache/ --exclude=__pycache__/ --exclude=/tests/output/ "$top/" "$copy/"
export PATH=$bin:$PATH ANSIBLE_COLLECTIONS_PATH=$work
# ansible-test bootstraps pip in its venvs with a script it downloads from a host outside PyPI.
# Give it, under the name it caches, an equivalent built on Python's own ensurepip + PyPI.
pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',/\1/p" "$("$bin/python" -c 'import ansible_test, os; print(os.path.dirname(ansible_test.__file__))')/_internal/python_requirements.py")
get_pip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -s "$get_pip" ]; then
  mkdir -p "$(dirname "$get_pip")"
  # ansible-test passes a minimal environment: a CA bundle set here (TLS-intercepting proxy) is kept.
  cert=${PIP_CERT:-${SSL_CERT_FILE:-}}
  cat >"$get_pip" <<PY
"""Stand-in for get-pip.py written by bluemind.migration's tests/sanity.sh: ensurepip, then pip install."""
import ensurepip
import subprocess
import sys

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")  # get-pip.py's own options, unknown to pip
CERT = ["--cert", "$cert"] if "$cert" else []

ensurepip.bootstrap(upgrade=True)
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--upgrade"] + CERT + args))
PY
fi
status=0
(cd "$copy" && "$bin/ansible-test" sanity --venv --python "$python_version" --color no) || status=1
for source in "$copy"/plugins/modules/*.py; do
  module=bluemind.migration.$(basename "$source" .py)
  if ! out=$("$bin/ansible-doc" -t module "$module" 2>&1) || [ -z "$out" ] || grep -q '^\[WARNING\]\|^\[ERROR\]' <<<"$out"; then
    echo "ansible-doc $module failed:" >&2; echo "$out" | tail -n 20 >&2; status=1
  else
    echo "ansible-doc $module: ok"
  fi
done
[ -n "${SANITY_WORKDIR:-}" ] || rm -rf "$work"
exit $status
