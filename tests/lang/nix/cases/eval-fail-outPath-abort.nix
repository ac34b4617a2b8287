"${{ outPath = abort "some failure"; }}"
