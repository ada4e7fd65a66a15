CREATE INDEX events_rest_shift ON events (rest_code, shift_num, log_offset)
