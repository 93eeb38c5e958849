# Lets a bare `snakemake` in the repository root run the workflow, which lives in workflow/.
include: "workflow/Snakefile"


# Rules of an included file never become the default target, so the default is named here.
rule default:
    input:
        rules.all.input,
