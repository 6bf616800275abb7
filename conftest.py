# nameko, kombu and psycopg2 must be green before anything imports them: plain pytest otherwise
# hangs in kombu.
import eventlet

eventlet.monkey_patch()

pytest_plugins = ["crm_platform.testing"]
