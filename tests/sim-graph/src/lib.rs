//! Simulator of Microsoft Graph v1.0 (identity endpoints, $batch, delta, throttling) and the Microsoft identity platform token endpoint, from Microsoft's public docs.
