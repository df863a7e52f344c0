"""Risk teachers: the schema of what they say, the privileged (physics) teacher, VLM teachers
with their backends, BEV risk targets and the annotation cache."""
