# Imported by generated configurations of virtual machines; nothing to do here.
{ ... }: { }
