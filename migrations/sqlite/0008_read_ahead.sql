-- Tasks a worker may hold beyond its slots: claimed ahead, they start on
-- the worker as its slots free, without a round trip.
ALTER TABLE workers ADD COLUMN read_ahead INTEGER NOT NULL DEFAULT 0;
