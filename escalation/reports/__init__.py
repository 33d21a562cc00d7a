"""Reports leaders read: bulletins (weekly 周报, monthly 月通报), the five-star rating of
units (五星评比), charts, and ledgers (台账) as XLSX/CSV."""
