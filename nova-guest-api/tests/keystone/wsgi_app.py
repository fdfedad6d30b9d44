"""Keystone's WSGI application for gunicorn. oslo.config parses sys.argv when Keystone loads
its configuration, and gunicorn's own options are still there: hide them first. The
configuration file comes from OS_KEYSTONE_CONFIG_FILES."""

import sys

sys.argv = sys.argv[:1]

from keystone.wsgi.api import application  # noqa: E402,F401
