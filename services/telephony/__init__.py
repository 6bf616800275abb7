"""The telephony service: owns calls, PBX adapters (Asterisk AMI, Mango Office, Zadarma) and the
extension-to-manager map."""
