"""Plans drawn and sized for people: the SVG chart of a plan (``chart``) and byte sizes as people
write them (``units``).  Shared by the command line and the web app.
"""
