"""On PostgreSQL the audit table refuses UPDATE and DELETE at the database itself.

Only a transaction that set `lhs.audit_purge = on` (units.audit.audit_events_purge) may
delete. TRUNCATE is left alone: the test runner empties tables with it.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION units_auditevent_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'DELETE' AND current_setting('lhs.audit_purge', true) = 'on' THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'units_auditevent is append-only'
        USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS units_auditevent_append_only ON units_auditevent;
CREATE TRIGGER units_auditevent_append_only
    BEFORE UPDATE OR DELETE ON units_auditevent
    FOR EACH ROW EXECUTE FUNCTION units_auditevent_append_only();
"""

DROP = """
DROP TRIGGER IF EXISTS units_auditevent_append_only ON units_auditevent;
DROP FUNCTION IF EXISTS units_auditevent_append_only();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("units", "0002_audit_event")]

    operations = [migrations.RunPython(forwards, backwards)]
