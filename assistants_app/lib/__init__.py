"""Pure helpers with no database or Django state: content sniffing, the attribute-filter grammar."""
