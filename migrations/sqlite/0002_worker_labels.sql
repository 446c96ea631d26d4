-- Labels a task's worker must carry (spec.resources.labels): a JSON map with
-- sorted keys, '{}' for none, so that equal requests compare equal as text.
ALTER TABLE tasks ADD COLUMN worker_labels TEXT NOT NULL DEFAULT '{}';
