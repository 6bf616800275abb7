# nameko, kombu and psycopg2 must be green before anything imports them: plain pytest otherwise
# hangs in kombu.
import os

import eventlet

# Hypothesis imports every package that registers a "hypothesis" entry point when it is first
# imported; trio (which selenium brings for the browser tests) is one, and trio cannot be imported
# under eventlet's patched socket module. No test here uses such a plugin.
os.environ.setdefault("HYPOTHESIS_NO_PLUGINS", "1")

eventlet.monkey_patch()

pytest_plugins = ["crm_platform.testing"]
