# Imported by generated hardware configurations; nothing to do here.
{ ... }: { }
