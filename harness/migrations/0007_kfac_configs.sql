-- How each K-FAC row of a benchmark factorised (`dense_method`: eigen or cholesky;
-- `inverse_dtype`: f32 or f64), and how many of its layer refreshes failed at every damping.
-- NULL in rows written before: their K-FAC rows ran the eigendecomposition in f64, and
-- failures were not counted.

ALTER TABLE bench_stages ADD COLUMN dense_method TEXT;
ALTER TABLE bench_stages ADD COLUMN inverse_dtype TEXT;
ALTER TABLE bench_stages ADD COLUMN failed_refreshes INTEGER;
