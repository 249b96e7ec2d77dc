"""Package metadata comes from settings.ini, the single source nbdev 2 also reads."""
from configparser import ConfigParser
import setuptools
from setuptools import find_packages, setup

cfg = ConfigParser(delimiters=['='])
cfg.read('settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']
reqs = lambda key: cfg.get(key, '').split()
# PEP 639: setuptools>=77 takes an SPDX expression (and deprecates License classifiers); older ones the free-text field
licence = dict(license_expression='MIT') if int(setuptools.__version__.split('.')[0]) >= 77 else dict(license='MIT')

setup(
    name=cfg['lib_name'], version=cfg['version'], description=cfg['description'],
    long_description=open('README.md', encoding='utf-8').read(), long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'], url=cfg['git_url'], **licence,
    keywords=cfg['keywords'].split(), python_requires=f">={cfg['min_python']}",
    packages=find_packages(include=[cfg['lib_name'], f"{cfg['lib_name']}.*"]),
    package_data={cfg['lib_name']: ['studies/*.toml']},  # the study presets `mas-nb study paper|tiny` reads
    install_requires=reqs('requirements'),
    extras_require={k.removesuffix('_requirements'): reqs(k) for k in cfg if k.endswith('_requirements')},  # dev, llm, slurm, ...
    entry_points={'console_scripts': reqs('console_scripts'), 'nbdev': [f"{cfg['lib_name']}={cfg['lib_name']}._modidx:d"]},
    classifiers=['Programming Language :: Python :: 3', 'Intended Audience :: Science/Research',
                 'Topic :: Scientific/Engineering :: Artificial Intelligence'],
    zip_safe=False,
)
