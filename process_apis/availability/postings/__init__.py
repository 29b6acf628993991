"""The warehouse's movements posted to the ERP, the book of record (decision 0028)."""
