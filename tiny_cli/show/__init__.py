"""What a person sees: tables that fit a terminal, pictures, the HTML report."""
