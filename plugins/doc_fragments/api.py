# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # Connection and authentication (module_utils/api.py, bluemind_api_argument_spec).
    DOCUMENTATION = r"""
options:
  api_url:
    description:
      - Base URL of the BlueMind server, without C(/api).
      - The default reaches C(bm-core) directly on the server the task runs on. Through nginx, give
        V(https://<external-url>) and keep O(validate_certs) on.
    type: str
    default: http://127.0.0.1:8090
  validate_certs:
    description:
      - Verify the server's TLS certificate. Turn it off only for a lab, never in production.
    type: bool
    default: true
  ca_path:
    description:
      - PEM file of the certificate authority that signed the server's certificate, when it is not
        in the system's trust store.
    type: path
  api_timeout:
    description:
      - Seconds to wait for each HTTP answer.
    type: int
    default: 30
  api_login:
    description:
      - Login used with O(api_password).
    type: str
    default: admin0@global.virt
  api_password:
    description:
      - Password of O(api_login). Sent only in the body of the login call, never logged.
      - At most one of O(api_password), O(api_token) and O(api_token_file) is given; the modules that
        act on the server need one.
    type: str
  api_token:
    description:
      - An API key used directly as C(X-BM-ApiKey), for example the content of C(/etc/bm/bm-core.tok).
    type: str
  api_token_file:
    description:
      - File on the managed host holding an API key, such as V(/etc/bm/bm-core.tok) when the task
        runs on the BlueMind server itself (readable by root).
    type: path
notes:
  - A wrong password is answered by BlueMind with HTTP 200 and C(status=Bad); the module reports
    C(login refused for <login>) and never shows the password.
"""

    # Modules that start a server task (module_utils/api.py, bluemind_api_task_argument_spec).
    TASK = r"""
options:
  task_timeout:
    description:
      - Seconds to wait for the server task started by the call to end.
    type: int
    default: 300
"""
