#compdef ovbackup

_ovbackup_completion() {
  eval $(env _TYPER_COMPLETE_ARGS="${words[1,$CURRENT]}" _OVBACKUP_COMPLETE=complete_zsh ovbackup)
}

if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  # autoloaded from $fpath: this call is already a completion
  _ovbackup_completion "$@"
else
  # sourced: register the function for the next TAB
  compdef _ovbackup_completion ovbackup
fi
