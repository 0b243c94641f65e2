-- What is known about a contact besides its identities (an import brings it along): a name a
-- person would address them by, and details as a JSON object (city, addresses, referrer).
ALTER TABLE contacts ADD COLUMN name TEXT;
ALTER TABLE contacts ADD COLUMN details TEXT;
