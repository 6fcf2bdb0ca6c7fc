"""Study reports: plotly figures and diagrams in one self-contained HTML file."""
