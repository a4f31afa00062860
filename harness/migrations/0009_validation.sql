-- Loss and accuracy on the validation split (training images held out, `validation` N) after
-- each epoch; NULL for runs without one and in rows written before.

ALTER TABLE epochs ADD COLUMN validation_loss REAL;
ALTER TABLE epochs ADD COLUMN validation_accuracy REAL;
