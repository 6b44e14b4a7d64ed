// Package secrets seals connector secrets (bind passwords, client secrets)
// before they are stored, and opens them again for the connector that needs
// them. It uses the standard library only.
package secrets
