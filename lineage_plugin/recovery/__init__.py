"""After a bad write: plan and carry out the restore (``deltalake`` or Spark), retrain as
recorded, compare the predictions, and roll an alias or stage back to a verified version."""
