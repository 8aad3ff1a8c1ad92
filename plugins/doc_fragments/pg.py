# -*- coding: utf-8 -*-
# Copyright (c) bluemind.migration contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment(object):
    # The PostgreSQL user and client tools of every module that runs them (module_utils/pg.py, pg_argument_spec).
    DOCUMENTATION = r"""
options:
  db_user:
    description:
      - PostgreSQL user (BlueMind's C(bj), a superuser).
    type: str
    default: bj
  pg_bin_dir:
    description:
      - Directory of the PostgreSQL client tools the module runs (C(psql), and C(pg_dump) for a module that
        dumps), for example V(/usr/lib/postgresql/15/bin). By default the ones found in E(PATH).
    type: path
"""

    # One server, reached from the host the task runs on (module_utils/pg.py, pg_server_argument_spec).
    SERVER = r"""
options:
  db_password:
    description:
      - Password of O(db_user) (C(password) in C(/etc/bm/bm.ini)). It reaches C(psql) through the
        environment (C(PGPASSWORD)), never its command line.
      - Leave it out to use a pgpass file (C(~/.pgpass) of the user the task runs as).
    type: str
  db_host:
    description:
      - Host of the PostgreSQL server.
    type: str
    default: 127.0.0.1
  db_port:
    description:
      - Port of the PostgreSQL server.
    type: int
    default: 5432
"""

    # Modules that work on the server beside its databases (module_utils/pg.py, pg_maintenance_argument_spec).
    MAINTENANCE = r"""
options:
  maintenance_db:
    description:
      - Database to connect to for what is not about one database (the server's version and available
        extensions, the databases' sizes and settings, dropping and creating a database).
    type: str
    default: postgres
"""
