-- Claims read a worker's GPUs from its hardware document; these copies were
-- written and never read.
ALTER TABLE workers DROP COLUMN gpu_models;
ALTER TABLE workers DROP COLUMN gpu_memory_bytes;
