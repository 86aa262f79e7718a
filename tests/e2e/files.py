"""Small import files for the end-to-end and browser tests (units and measures of `org`)."""

PATIENT_ROWS = """\
measure_code,unit_code,date,value,subject_key
honos-total,AFF-01,2024-01-01,12,p001
honos-total,AFF-01,2024-01-02,15,p002
honos-total,AFF-01,2024-01-08,9,p003
honos-total,AFF-01,2024-01-09,20,p004
incidents,AFF-01,2024-01-10,2,
incidents,AFF-01,2024-01-10,2,
"""

# The first four rows again (an extract sent twice) and two new ratings.
PATIENT_ROWS_OVERLAPPING = """\
measure_code,unit_code,date,value,subject_key
honos-total,AFF-01,2024-01-01,12,p001
honos-total,AFF-01,2024-01-02,15,p002
honos-total,AFF-01,2024-01-08,9,p003
honos-total,AFF-01,2024-01-09,20,p004
honos-total,AFF-01,2024-01-15,7,p005
honos-total,AFF-01,2024-01-16,30,p006
"""

# Row 2 is valid, every other row has one problem: nothing at all may be written.
INVALID_ROWS = """\
measure_code,unit_code,date,value
honos-total,AFF-01,2024-01-01,12
honos-total,AFF-01,2024-01-02,99
no-such-measure,AFF-01,2024-01-03,5
honos-total,AFF-02,2024-01-04,5
honos-total,AFF-01,2024-13-01,5
"""

# Pre-aggregated, as a Swedish spreadsheet exports it: semicolons and Swedish headers.
AGGREGATE_ROWS = """\
mått;enhet;period;täljare;nämnare
care-plan;AFF-01;2024-01-01;8;10
care-plan;AFF-01;2024-02-01;9;12
care-plan;AFF-01;2024-03-01;11;11
"""
