"""Each shared argument spec of module_utils and the doc fragment that documents it hold the same
options, types and defaults (sanity's validate-modules checks it module by module, minutes later)."""
import pytest
import yaml

from ansible_collections.bluemind.migration.plugins.doc_fragments import api as api_doc, pg as pg_doc
from ansible_collections.bluemind.migration.plugins.module_utils import api, pg

PAIRS = [
    (pg_doc.ModuleDocFragment.DOCUMENTATION, pg.pg_argument_spec),
    (pg_doc.ModuleDocFragment.SERVER, pg.pg_server_argument_spec),
    (pg_doc.ModuleDocFragment.MAINTENANCE, pg.pg_maintenance_argument_spec),
    (api_doc.ModuleDocFragment.DOCUMENTATION, api.bluemind_api_argument_spec),
    (api_doc.ModuleDocFragment.TASK, api.bluemind_api_task_argument_spec),
]


@pytest.mark.parametrize("fragment, spec", PAIRS, ids=lambda p: getattr(p, "__name__", ""))
def test_fragment_documents_its_argument_spec(fragment, spec):
    documented = yaml.safe_load(fragment)["options"]
    options = spec()
    assert sorted(documented) == sorted(options)
    for name, option in options.items():
        assert documented[name]["type"] == option["type"], name
        assert documented[name].get("default") == option.get("default"), name


def test_passwords_are_never_logged():
    assert pg.pg_server_argument_spec()["db_password"]["no_log"] is True
